"""``python -m bench.concurrency`` (or ``python -m bench --only concurrency-footprint``): Lambda Managed Instances,
lambda-supervisor's slots against awslambdaric's multi-concurrent mode, both with
``AWS_LAMBDA_MAX_CONCURRENCY=N`` on the same emulator, interleaved round by round.

Two figures per runtime and N:

* ready: from the bootstrap's start to N ``next`` polls open (every slot initialised);
* PSS at rest: the whole process tree's proportional set size (a page shared copy-on-write counts once), after
  each slot served one request, with a handler whose init holds ``--hold-mb`` MB (bench/task_root/hold_init.py).

Prints one line per round and the medians, with the machine's load (``uptime``) before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import psutil

from .emulator import BenchEmulator
from .runtimes import TASK_ROOT, AwsLambdaRic, Runtime, Supervisor, _spawn, awslambdaric_installed, stop

HANDLER = "hold_init.handler"
SETTLE_S = 0.5


def tree_pss_mb(pid: int) -> float:
    """The PSS of ``pid`` and all its descendants, in MB."""
    total = 0
    root = psutil.Process(pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total / 2**20


def measure(make: Callable[[BenchEmulator], Runtime], slots: int, hold_mb: int) -> tuple[float, float]:
    """(seconds to all slots ready, PSS at rest in MB) for one start of one runtime."""
    with BenchEmulator(function_timeout_s=30.0) as emulator:
        runtime = make(emulator)
        env = runtime.environment()
        env.update(AWS_LAMBDA_MAX_CONCURRENCY=str(slots), HOLD_INIT_MB=str(hold_mb))
        started = time.monotonic()
        process = _spawn(runtime.kind, runtime.command(), env, TASK_ROOT)
        try:
            emulator.wait_next_polled(slots, timeout=120)
            ready_s = time.monotonic() - started
            polls = emulator.next_poll_count
            ids = [emulator.submit(json.dumps({}).encode()) for _ in range(slots)]
            for request_id in ids:
                emulator.wait_outcome(request_id, timeout=60)
            emulator.wait_next_polled(polls + slots, timeout=30)  # every slot served one and polls again
            time.sleep(SETTLE_S)
            return ready_s, tree_pss_mb(process.pid)
        finally:
            stop(process)


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


class Footprint(NamedTuple):
    """How many rounds, at which N, with how much memory held by the handler's init."""

    rounds: int
    slot_counts: tuple[int, ...]
    hold_mb: int


#: The scenario ``python -m bench --only concurrency-footprint`` (bench/run.py) runs, quick or full.
QUICK = Footprint(rounds=1, slot_counts=(4,), hold_mb=50)
FULL = Footprint(rounds=5, slot_counts=(4, 16), hold_mb=50)


def footprint(rounds: int, slot_counts: Sequence[int], hold_mb: int) -> dict[str, Any]:
    """Every runtime at every N, interleaved round by round: one line per start, and the medians as a dict
    (``{runtime: {N: {"ready_ms", "pss_at_rest_mb"}}}``)."""
    kinds: dict[str, Callable[[BenchEmulator], Runtime]] = {
        "lambda-supervisor": lambda emulator: Supervisor(emulator, HANDLER)}
    if awslambdaric_installed():
        kinds["awslambdaric"] = lambda emulator: AwsLambdaRic(emulator, HANDLER)
    results: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for round_number in range(rounds):
        for slots in slot_counts:
            for kind, make in kinds.items():  # interleaved: each round runs every runtime once
                ready_s, pss_mb = measure(make, slots, hold_mb)
                results.setdefault((kind, slots), []).append((ready_s, pss_mb))
                print(f"round {round_number + 1} N={slots:<3} {kind:<18} ready {ready_s * 1000:7.0f} ms   "
                      f"PSS at rest {pss_mb:7.1f} MB", flush=True)
    medians: dict[str, Any] = {"hold_mb": hold_mb, "rounds": rounds}
    for (kind, slots), rows in results.items():
        medians.setdefault(kind, {})[str(slots)] = {
            "ready_ms": statistics.median(row[0] for row in rows) * 1000,
            "pss_at_rest_mb": statistics.median(row[1] for row in rows)}
    return medians


def summary(medians: dict[str, Any]) -> str:
    """The medians, one line per runtime and N, and our PSS against awslambdaric's."""
    lines = [f"medians over {medians['rounds']} rounds (init holds {medians['hold_mb']} MB):"]
    ours, theirs = medians.get("lambda-supervisor", {}), medians.get("awslambdaric", {})
    for slots in sorted({*ours, *theirs}, key=int):
        for kind, rows in (("lambda-supervisor", ours), ("awslambdaric", theirs)):
            if slots in rows:
                lines.append(f"  N={slots:<3} {kind:<18} ready {rows[slots]['ready_ms']:7.0f} ms   "
                             f"PSS at rest {rows[slots]['pss_at_rest_mb']:7.1f} MB")
        if slots in ours and slots in theirs:
            ratio = ours[slots]["pss_at_rest_mb"] / theirs[slots]["pss_at_rest_mb"]
            lines.append(f"  N={slots:<3} PSS ours / awslambdaric's = {ratio:.2f}x")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.concurrency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=FULL.rounds)
    parser.add_argument("--slots", type=int, nargs="+", default=list(FULL.slot_counts))
    parser.add_argument("--hold-mb", type=int, default=FULL.hold_mb)
    options = parser.parse_args()
    from loguru import logger

    logger.remove()  # the emulator's debug lines would cost more than what is measured
    print(f"load before: {load()}")
    medians = footprint(options.rounds, options.slots, options.hold_mb)
    print(f"load after: {load()}")
    print()
    print(summary(medians))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
