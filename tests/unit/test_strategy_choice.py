"""The rule of the default respawn strategy (supervisor/strategy_choice.py), at its edges."""

from __future__ import annotations

from lambda_supervisor.supervisor.strategy_choice import template_ahead

MiB = 1024 * 1024


def test_the_template_starts_ahead_while_the_supervisor_and_two_workers_take_at_most_60_percent() -> None:
    assert template_ahead(1000, 100 * MiB, 250 * MiB)[0]  # exactly 600 MB
    assert not template_ahead(1000, 100 * MiB, 251 * MiB)[0]
    ahead, reason = template_ahead(128, 12 * MiB, 40 * MiB)
    assert not ahead
    assert reason == ("supervisor 12.0 MB + 2 x worker 40.0 MB = 92.0 MB > 60% of 128 MB: no room for a second "
                      "initialised process; the template starts at a fault")
