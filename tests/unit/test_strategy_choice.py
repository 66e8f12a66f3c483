"""The rule of the default respawn strategy (supervisor/strategy_choice.py), at its edges."""

from __future__ import annotations

from lambda_supervisor.shared.protocol import InitLeftovers
from lambda_supervisor.supervisor.strategy_choice import AutoChoice, auto_choice, template_ahead

MiB = 1024 * 1024


def test_the_template_starts_ahead_while_the_supervisor_and_two_workers_take_at_most_60_percent() -> None:
    assert template_ahead(1000, 100 * MiB, 250 * MiB)[0]  # exactly 600 MB
    assert not template_ahead(1000, 100 * MiB, 251 * MiB)[0]
    ahead, reason = template_ahead(128, 12 * MiB, 40 * MiB)
    assert not ahead
    assert reason == ("supervisor 12.0 MB + 2 x worker 40.0 MB = 92.0 MB > 60% of 128 MB: no room for a second "
                      "initialised process; the template starts at a fault")


def test_auto_forks_a_plain_init_from_a_template_ahead_where_it_fits_else_at_the_fault() -> None:
    plain = InitLeftovers()
    assert auto_choice(1000, 100 * MiB, 250 * MiB, plain) == AutoChoice("fork", True, template_ahead(1000, 100 * MiB,
                                                                                           250 * MiB)[1])
    later = auto_choice(1000, 100 * MiB, 251 * MiB, plain)
    assert (later.strategy, later.template_ahead) == ("fork", False)


def test_auto_keeps_a_standby_where_it_fits_and_the_init_left_a_socket_or_a_thread() -> None:
    choice = auto_choice(1024, 12 * MiB, 40 * MiB, InitLeftovers(open_sockets=1))
    assert choice == AutoChoice("spare", False, "supervisor 12.0 MB + 2 x worker 40.0 MB = 92.0 MB <= 60% of 1024 MB, "
                                "and init left 1 socket open (forks share it): a standby is kept instead of forks")
    assert auto_choice(1024, 12 * MiB, 40 * MiB, InitLeftovers(extra_threads=3)).strategy == "spare"


def test_where_nothing_fits_auto_forks_at_the_fault_and_says_what_the_forks_share_or_lack() -> None:
    choice = auto_choice(128, 12 * MiB, 40 * MiB, InitLeftovers(open_sockets=2, extra_threads=1))
    assert (choice.strategy, choice.template_ahead) == ("fork", False)
    assert choice.reason.endswith("the template starts at a fault; init left 2 sockets open (forks share them) and "
                                  "1 thread besides the main one (forks lack it)")
