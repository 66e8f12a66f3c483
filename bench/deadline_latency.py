"""How late after its timer is a hang's Runtime.Timeout posted? Sizes LAMBDA_SUPERVISOR_TIMEOUT_MARGIN_MS.

Runs the real supervisor against the emulator with a CPU-burning hang, and for each invocation measures the time
from the supervisor's timeout timer (the deadline minus a known margin) to the post's arrival at the emulator:
stack dump, freeze, post. ``--hogs N`` adds N busy processes (CPU load from elsewhere on the machine).

    python -m bench.deadline_latency -n 100 --hogs 2
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from pathlib import Path

from lambda_supervisor.local.emulator.server import RuntimeApiEmulator
from lambda_supervisor.local.runtime import start_runtime, stop_runtime
from lambda_supervisor.supervisor.logs import configure_logging

from .stats import percentile

TASK_ROOT = Path(__file__).resolve().parent.parent / "tests" / "task_roots" / "deadlines"
MARGIN_MS = 1000  # far more than the latency: every post arrives in time, so each one is measured
TIMEOUT_S = 1.5


def _hog() -> None:
    while True:
        pass


def measure(count: int) -> list[float]:
    latencies: list[float] = []
    with RuntimeApiEmulator(function_timeout_s=TIMEOUT_S) as emulator, open(os.devnull, "wb") as devnull:
        runtime = start_runtime(emulator, "deadlines.spin", TASK_ROOT,
                                {"LAMBDA_SUPERVISOR_TIMEOUT_MARGIN_MS": str(MARGIN_MS),
                                 "LAMBDA_SUPERVISOR_LOG_LEVEL": "WARNING"}, output=devnull)
        try:
            for _ in range(count):
                record = emulator.invoke({}, wait=60)
                if record.answered_at is None or record.deadline_ms is None:
                    print(f"unanswered in time: {record.describe()}", file=sys.stderr)
                    continue
                latencies.append(record.answered_at * 1000 - (record.deadline_ms - MARGIN_MS))
        finally:
            stop_runtime(runtime)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100, help="invocations (each hangs until its timeout)")
    parser.add_argument("--hogs", type=int, default=0, help="busy processes running alongside")
    args = parser.parse_args()
    configure_logging("WARNING")
    hogs = [multiprocessing.Process(target=_hog, daemon=True) for _ in range(args.hogs)]
    for hog in hogs:
        hog.start()
    try:
        latencies = measure(args.n)
    finally:
        for hog in hogs:
            hog.kill()
    if not latencies:
        return 1
    print(f"timer-to-post latency over {len(latencies)} hangs (CPU-burning handler, {args.hogs} extra hogs): "
          f"p50 {percentile(latencies, 0.5):.1f} ms  p90 {percentile(latencies, 0.9):.1f} ms  "
          f"p99 {percentile(latencies, 0.99):.1f} ms  max {max(latencies):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
