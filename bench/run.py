"""``python -m bench``: run the scenarios side by side against one local emulator, print a table, write JSON.

A failing scenario is reported as failed and the others still run; every process started is stopped on the way
out, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from loguru import logger

from . import cold, concurrency, machine, mi_throughput, report, report_mi, scenarios
from .runtimes import stop_all

SCENARIOS: dict[str, Callable[[scenarios.Sizes], dict[str, Any]]] = {
    "noop": lambda sizes: scenarios.throughput(sizes, big=False),
    # the same, the emulator sending each answer in one write, as Go's net/http does
    "noop-one-write": lambda sizes: scenarios.throughput(sizes, big=False, one_write=True),
    "big": lambda sizes: scenarios.throughput(sizes, big=True),
    "lean": scenarios.lean,  # the no-op warm path against a Runtime API that answers at once
    "go": scenarios.go,  # the same against a Runtime API on Go's net/http, as Lambda's own is (needs Go)
    "crash": scenarios.crash,
    "hang": scenarios.hang,
    "memory": scenarios.memory,
    "coldstart": cold.coldstart,
    "footprint": cold.footprint,
    "crashes": cold.crashes,
    "contention": cold.contention,
    # Managed Instances: I/O- and CPU-bound scaling with N slots, and crashes, against awslambdaric's own mode
    "concurrency": lambda sizes: mi_throughput.measure(
        mi_throughput.QUICK if sizes == scenarios.QUICK else mi_throughput.FULL),
    # Managed Instances: time to N slots ready and PSS at rest (an init holding 50 MB), against awslambdaric's
    "concurrency-footprint": lambda sizes: concurrency.footprint(
        *(concurrency.QUICK if sizes == scenarios.QUICK else concurrency.FULL)),
}


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few iterations: a smoke run, under a minute")
    parser.add_argument("--only", nargs="+", choices=list(SCENARIOS), help="run only these scenarios")
    parser.add_argument("--output", type=Path, default=report.RESULTS / "latest.json",
                        help="where to write the JSON (default: bench/results/latest.json)")
    options = parser.parse_args(argv)
    logger.remove()  # the emulator's debug lines would cost more than what is measured
    signal.signal(signal.SIGTERM, _terminate)
    sizes = scenarios.QUICK if options.quick else scenarios.FULL
    results: dict[str, Any] = {"machine": machine.describe(), "mode": "quick" if options.quick else "full"}
    print(f"machine: {report.machine_line(results['machine'])}", flush=True)
    failed = False
    try:
        for name in options.only or list(SCENARIOS):
            started = time.monotonic()
            print(f"running {name} ...", end=" ", flush=True)
            try:
                results[name] = SCENARIOS[name](sizes)
            except Exception as error:
                failed = True
                results[name] = {"error": f"{type(error).__name__}: {error}"}
                traceback.print_exc()
            finally:
                stop_all()
            print(f"{time.monotonic() - started:.1f} s", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the runtimes", file=sys.stderr)
        return 130
    finally:
        stop_all()
    path = report.write_json(results, options.output)
    print()
    print(report.table(results))
    if "concurrency" in results and "error" not in results["concurrency"]:
        print()
        print(report_mi.table(results["concurrency"]))
    if "concurrency-footprint" in results and "error" not in results["concurrency-footprint"]:
        print()
        print(concurrency.summary(results["concurrency-footprint"]))
    print(f"\nJSON: {path}")
    return 1 if failed else 0
