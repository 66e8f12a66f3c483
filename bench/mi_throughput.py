"""``python -m bench.mi_throughput [--quick]``: throughput under Lambda Managed Instances' concurrency.

lambda-supervisor against awslambdaric's multi-concurrent mode, both given the same ``AWS_LAMBDA_MAX_CONCURRENCY``,
each run on its own emulator of the same kind, rounds interleaved, medians of rounds: an I/O-bound handler at N=8
and a CPU-bound one at N=2, each against the runtime's own N=1 figure; then a handler that crashes on every 100th
request, for a fixed window: requests served per second, and how many slots still serve at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from loguru import logger

from . import machine, report, report_mi
from .emulator import BenchEmulator
from .runtimes import AwsLambdaRic, Runtime, Supervisor, awslambdaric_installed, stop_all
from .stats import median

HANDLER = "mi_app.handler"
CONCURRENCY_VARIABLE = "AWS_LAMBDA_MAX_CONCURRENCY"
KINDS = ("lambda-supervisor", "awslambdaric")
CRASH_EVERY = 100
WAIT_S = 30.0
CRASH_TIMEOUT_S = 5.0  # the function timeout in the crash scenario: awslambdaric never answers a crashed request
PROBE_MS = 500  # the probe requests that count the slots still serving


@dataclass(frozen=True)
class Sizes:
    rounds: int  # interleaved rounds per runtime and N
    per_slot: int  # measured invocations per slot in a throughput run
    warmup_per_slot: int
    crash_window_s: float
    slots_ready_s: float  # after the first poll, how long a runtime has to open all N polls
    io_n: int = 8
    cpu_n: int = 2
    crash_n: int = 8
    sleep_ms: int = 50
    cpu_ms: int = 50


FULL = Sizes(rounds=3, per_slot=40, warmup_per_slot=4, crash_window_s=10.0, slots_ready_s=15.0)
QUICK = Sizes(rounds=1, per_slot=4, warmup_per_slot=1, crash_window_s=2.0, slots_ready_s=3.0, crash_n=4)


class MultiConcurrentRic(AwsLambdaRic):
    """awslambdaric in its Managed Instances mode: it forks N processes, each with its own poll."""

    def __init__(self, emulator: BenchEmulator, handler: str, concurrency: int) -> None:
        super().__init__(emulator, handler)
        self.concurrency = concurrency

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env[CONCURRENCY_VARIABLE] = str(self.concurrency)
        return env


def _runtime(kind: str, emulator: BenchEmulator, n: int) -> Runtime:
    if kind == "lambda-supervisor":
        return Supervisor(emulator, HANDLER, extra_env={CONCURRENCY_VARIABLE: str(n)})
    return MultiConcurrentRic(emulator, HANDLER, n)


@contextlib.contextmanager
def started(kind: str, n: int, sizes: Sizes, timeout_s: float) -> Iterator[tuple[BenchEmulator, Runtime, int]]:
    """A fresh emulator and ``kind`` on it with N=``n``; yields them and how many polls it opened (a runtime
    without N slots opens fewer, and is measured as it is)."""
    with BenchEmulator(function_timeout_s=timeout_s) as emulator:
        runtime = _runtime(kind, emulator, n)
        try:
            runtime.start()
            with contextlib.suppress(TimeoutError):
                emulator.wait_polls_waiting(n, sizes.slots_ready_s)
            yield emulator, runtime, emulator.polls_waiting
        finally:
            runtime.stop()


def closed_loop(emulator: BenchEmulator, event: dict[str, Any], count: int, clients: int) -> float:
    """``count`` invocations by ``clients`` threads, each submitting its next as soon as its last is answered;
    returns invocations per second. Any outcome but a response fails the run."""
    body = json.dumps(event).encode()
    lock = threading.Lock()
    left = [count]
    failures: list[str] = []

    def client() -> None:
        while True:
            with lock:
                if left[0] == 0 or failures:
                    return
                left[0] -= 1
            record = emulator.invoke(body, wait=WAIT_S)
            if record.outcome_kind != "response":
                with lock:
                    failures.append(record.describe())

    started_at = time.monotonic()
    _run_threads(client, clients)
    elapsed = time.monotonic() - started_at
    if failures:
        raise RuntimeError(f"unexpected outcome in a throughput run: {failures[0]}")
    return count / elapsed


def _run_threads(target: Any, count: int) -> None:
    threads = [threading.Thread(target=target, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def scaling(sizes: Sizes, event: dict[str, Any], n: int) -> dict[str, Any]:
    """Invocations per second at N=1 and N=``n`` for each runtime (2N clients keep every slot busy), rounds
    interleaved; the ratio of the medians."""
    kinds = [kind for kind in KINDS if kind != "awslambdaric" or awslambdaric_installed()]
    rates: dict[tuple[str, int], list[float]] = {(kind, slots): [] for kind in kinds for slots in (1, n)}
    polling: dict[tuple[str, int], list[int]] = {key: [] for key in rates}
    for _ in range(sizes.rounds):
        for kind in kinds:
            for slots in (1, n):
                with started(kind, slots, sizes, WAIT_S) as (emulator, _, polls):
                    closed_loop(emulator, event, sizes.warmup_per_slot * slots, 2 * slots)
                    rates[kind, slots].append(closed_loop(emulator, event, sizes.per_slot * slots, 2 * slots))
                    polling[kind, slots].append(polls)
    result: dict[str, Any] = {"n": n, "event": event, "rounds": sizes.rounds}
    for kind in kinds:
        one, many = median(rates[kind, 1]), median(rates[kind, n])
        result[kind] = {"n1_per_s": one, "n_per_s": many, "ratio": many / one,
                        "slots_polling": min(polling[kind, n]), "invocations_per_slot": sizes.per_slot}
    if not awslambdaric_installed():
        result["awslambdaric"] = {"unsupported": "awslambdaric is not installed (pip install -e '.[bench]')"}
    return result


@dataclass
class _Tally:
    served: int = 0
    failed: int = 0
    crashes: int = 0
    submitted: int = 0


def crash_window(emulator: BenchEmulator, n: int, sizes: Sizes) -> _Tally:
    """2N clients for a fixed window; every 100th request crashes its process (sent without waiting for it, so the
    clients keep N busy); counts the responses that arrive within the window."""
    tally, lock = _Tally(), threading.Lock()
    end = time.monotonic() + sizes.crash_window_s
    work = json.dumps({"sleep_ms": sizes.sleep_ms}).encode()

    def client() -> None:
        while time.monotonic() < end:
            with lock:
                tally.submitted += 1
                crash = tally.submitted % CRASH_EVERY == 0
                tally.crashes += crash
            if crash:
                emulator.submit(b'{"crash": true}')
                continue
            request_id = emulator.submit(work)
            try:
                record = emulator.wait_outcome(request_id, max(end - time.monotonic(), 0.0))
            except TimeoutError:
                return  # the window closed first
            with lock:
                if record.outcome_kind == "response":
                    tally.served += 1
                else:
                    tally.failed += 1

    _run_threads(client, 2 * n)
    return tally


def slots_serving(emulator: BenchEmulator, runtime: Runtime, n: int) -> int:
    """How many slots still serve: N probes of PROBE_MS each, queued behind whatever the window left; the slots
    alive take the first ones together, the next ones come a probe's time later."""
    ids = [emulator.submit({"sleep_ms": PROBE_MS}) for _ in range(n)]
    end = time.monotonic() + WAIT_S

    def hand_outs() -> list[float]:
        return sorted(at for at in (emulator.record(each).handed_out_at for each in ids) if at is not None)

    while time.monotonic() < end:
        if runtime.process is not None and runtime.process.poll() is not None and not hand_outs():
            return 0  # the runtime process is gone: nothing will ever take them
        first = hand_outs()
        if first and time.monotonic() > first[0] + 0.75 * PROBE_MS / 1000:
            break
        time.sleep(0.02)  # polling another process's progress: bounded by ``end``
    first = hand_outs()
    return sum(1 for at in first if at - first[0] < PROBE_MS / 2000)


def crashes(sizes: Sizes) -> dict[str, Any]:
    """The crash scenario for each runtime, rounds interleaved."""
    kinds = [kind for kind in KINDS if kind != "awslambdaric" or awslambdaric_installed()]
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for _ in range(sizes.rounds):
        for kind in kinds:
            with started(kind, sizes.crash_n, sizes, CRASH_TIMEOUT_S) as (emulator, runtime, polls):
                tally = crash_window(emulator, sizes.crash_n, sizes)
                alive = slots_serving(emulator, runtime, sizes.crash_n)
            runs[kind].append({"served_per_s": tally.served / sizes.crash_window_s, "served": tally.served,
                               "failed": tally.failed, "crashes": tally.crashes, "slots_polling": polls,
                               "slots_serving_at_end": alive})
    result: dict[str, Any] = {"n": sizes.crash_n, "window_s": sizes.crash_window_s, "crash_every": CRASH_EVERY,
                              "rounds": sizes.rounds}
    for kind, measured in runs.items():
        result[kind] = {key: median([run[key] for run in measured]) for key in measured[0]}
        result[kind]["slots_serving_at_end_min"] = min(run["slots_serving_at_end"] for run in measured)
    return result


def measure(sizes: Sizes) -> dict[str, Any]:
    """Every scenario of this module, as one block of results (``python -m bench --only concurrency`` too)."""
    return {
        "io": scaling(sizes, {"sleep_ms": sizes.sleep_ms}, sizes.io_n),
        "cpu": scaling(sizes, {"cpu_ms": sizes.cpu_ms}, sizes.cpu_n),
        "crash": crashes(sizes),
    }


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mi_throughput", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small numbers: a smoke run, under a minute")
    parser.add_argument("--output", type=Path, default=report.RESULTS / "mi_throughput.json",
                        help="where to write the JSON (default: bench/results/mi_throughput.json)")
    options = parser.parse_args(argv)
    logger.remove()  # the emulator's debug lines would cost more than what is measured
    signal.signal(signal.SIGTERM, _terminate)
    results: dict[str, Any] = {"machine": machine.describe(), "mode": "quick" if options.quick else "full"}
    print(f"machine: {report.machine_line(results['machine'])}", flush=True)
    try:
        results["concurrency"] = measure(QUICK if options.quick else FULL)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the runtimes", file=sys.stderr)
        return 130
    finally:
        stop_all()
    path = report.write_json(results, options.output)
    print()
    print(report_mi.table(results["concurrency"]))
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
