"""The rule of the default respawn strategy (supervisor/strategy_choice.py), at its edges."""

from __future__ import annotations

from lambda_supervisor.supervisor.strategy_choice import choose_strategy

MiB = 1024 * 1024


def test_spare_while_the_supervisor_and_two_workers_take_at_most_60_percent() -> None:
    assert choose_strategy(1000, 100 * MiB, 250 * MiB)[0] == "spare"  # exactly 600 MB
    assert choose_strategy(1000, 100 * MiB, 251 * MiB)[0] == "fork"
    strategy, reason = choose_strategy(128, 12 * MiB, 40 * MiB)
    assert strategy == "fork"
    assert reason == "supervisor 12.0 MB + 2 x worker 40.0 MB = 92.0 MB > 60% of 128 MB: no room for a standby"
