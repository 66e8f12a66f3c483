"""The warm-path, crash, hang and memory scenarios. Each starts its runtimes, measures, stops them, and returns
plain data for the report.

All waits are bounded (``WAIT_S``), every runtime is stopped in a ``finally``, and nothing leaves loopback.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .emulator import BenchEmulator
from .go_api import GoRuntimeApi, go_available
from .lean_api import LeanRuntimeApi
from .report_cold import SETTINGS_OFF
from .runtimes import (
    STRATEGIES,
    AwsLambdaRic,
    Floor,
    FloorHttpClient,
    FloorOurClient,
    FloorTwoProcesses,
    Runtime,
    Supervisor,
    Unsupported,
    awslambdaric_installed,
)
from .stats import median, percentile

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .runtimes import RuntimeApiHost

T = TypeVar("T")
WAIT_S = 30.0
MiB = 1024 * 1024
RUNTIME_KINDS = ("lambda-supervisor", "awslambdaric", "floor", "floor-http.client", "floor-ours",
                 "floor-two-processes", *(kind for kind, _ in SETTINGS_OFF))


@dataclass(frozen=True)
class Sizes:
    rounds: int  # throughput rounds per runtime, interleaved
    noop_invocations: int  # per round
    big_invocations: int  # per round
    warmup: int
    crash_repeats: int
    hang_repeats: int
    memory_invocations: int
    oom_repeats: int
    lean_invocations: int  # per round, against the lean Runtime API
    #: Beside a busy loop, how long each runtime serves before a round is measured: a warm environment's steady
    #: state, the supervisor having had the time it takes to move its hand-off's home (supervisor/cpu_home.py).
    contention_settle_s: float = 0.0


#: 11 rounds: awslambdaric's own rounds move by up to 13 % within one run on a 2-vCPU machine, and the median of 5
#: moved a ratio near 1.0 by several points between runs (README, "Cold start, footprint and the warm path").
FULL = Sizes(rounds=11, noop_invocations=2000, big_invocations=150, warmup=200, crash_repeats=10, hang_repeats=10,
             memory_invocations=10_000, oom_repeats=5, lean_invocations=3000, contention_settle_s=1.0)
QUICK = Sizes(rounds=1, noop_invocations=300, big_invocations=20, warmup=30, crash_repeats=2, hang_repeats=2,
              memory_invocations=500, oom_repeats=1, lean_invocations=300)


def _runtime(kind: str, emulator: RuntimeApiHost, handler: str) -> Runtime:
    if kind == "lambda-supervisor":
        return Supervisor(emulator, f"bench_app.{handler}")
    for variant, setting in SETTINGS_OFF:
        if kind == variant:
            return Supervisor(emulator, f"bench_app.{handler}", extra_env={f"LAMBDA_SUPERVISOR_{setting}": "off"})
    if kind == "awslambdaric":
        return AwsLambdaRic(emulator, f"bench_app.{handler}")
    if kind == "floor-http.client":
        return FloorHttpClient(emulator, f"bench_app.{handler}")
    if kind == "floor-ours":
        return FloorOurClient(emulator, f"bench_app.{handler}")
    if kind == "floor-two-processes":
        return FloorTwoProcesses(emulator, f"bench_app.{handler}")
    return Floor(emulator, f"bench_app.{handler}")


@contextmanager
def running(runtime: Runtime) -> Iterator[Runtime]:
    try:
        yield runtime.start()
    finally:
        runtime.stop()


def interleaved_rounds(host: RuntimeApiHost, kinds: list[str], rounds: int, handler: str,
                       measure: Callable[[], T]) -> dict[str, list[T]]:
    """``rounds`` rounds; in each, every kind in turn is started against ``host``, measured once by ``measure``
    (its warm-up included) and stopped. Each kind's measurements, in round order."""
    measured: dict[str, list[T]] = {kind: [] for kind in kinds}
    for _ in range(rounds):
        for kind in kinds:
            with running(_runtime(kind, host, handler)):
                measured[kind].append(measure())
    return measured


def _compared_kinds() -> list[str]:
    """Every runtime and floor the warm-path scenarios compare (awslambdaric when it is installed)."""
    return [kind for kind in RUNTIME_KINDS if kind != "awslambdaric" or awslambdaric_installed()]


def _sequential(emulator: BenchEmulator, body: bytes, count: int, check: Callable[[bytes], bool]) -> dict[str, Any]:
    """``count`` invocations one after the other; client-side latency is submit -> outcome seen."""
    latencies: list[float] = []
    started = time.monotonic()
    for _ in range(count):
        request_id = emulator.submit(body)
        record = emulator.wait_outcome(request_id, WAIT_S)
        latencies.append(time.monotonic() - record.submitted_at)
        if record.outcome_kind != "response" or not check(record.response):
            raise RuntimeError(f"unexpected outcome in a throughput run: {record.describe()}")
        emulator.discard(request_id)  # kept, 11 rounds of 1 MiB events and answers held ~13 GB and slowed all
    elapsed = time.monotonic() - started
    return {"throughput_per_s": count / elapsed, "p50_ms": percentile(latencies, 0.5) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000, "invocations": count}


def throughput(sizes: Sizes, *, big: bool, one_write: bool = False) -> dict[str, Any]:
    """Scenarios 1 (no-op) and 2 (1 MiB in, 1 MiB out): every runtime and floor, rounds interleaved, medians of
    rounds. ``one_write``: the emulator sends each answer in one write (BenchEmulator)."""
    if big:
        payload = "x" * MiB
        body = json.dumps({"data": payload}).encode()
        expected = json.dumps(payload).encode()
        handler, count = "echo_data", sizes.big_invocations

        def check(response: bytes) -> bool:
            return len(response) == len(expected) and json.loads(response) == payload
    else:
        body, handler, count = b"{}", "noop", sizes.noop_invocations

        def check(response: bytes) -> bool:
            return bool(json.loads(response) == {})
    warmup = sizes.warmup if not big else max(5, sizes.warmup // 10)
    with BenchEmulator(function_timeout_s=60.0, one_write=one_write) as emulator:
        def measure() -> dict[str, Any]:
            _sequential(emulator, body, warmup, check)
            return _sequential(emulator, body, count, check)

        rounds = interleaved_rounds(emulator, _compared_kinds(), sizes.rounds, handler, measure)
    result: dict[str, Any] = {}
    for kind, measured in rounds.items():
        result[kind] = {key: median([m[key] for m in measured]) for key in ("throughput_per_s", "p50_ms", "p99_ms")}
        result[kind].update(rounds=len(measured), invocations_per_round=count)
    if not awslambdaric_installed():
        result["awslambdaric"] = {"unsupported": "awslambdaric is not installed (pip install -e '.[bench]')"}
    return result


#: How long the lean Runtime API's second series waits before handing out each event (bench/lean_api.py).
LEAN_PAUSE_US = 300


def lean(sizes: Sizes) -> dict[str, Any]:
    """The no-op warm path against a Runtime API that answers at once (bench/lean_api.py): each runtime's own cost
    per invocation, without the emulator's. Every runtime and floor of the no-op scenario, rounds interleaved,
    medians of rounds; then the same with each event handed out LEAN_PAUSE_US after its ``next`` (``paused``),
    the CPUs idle meanwhile."""
    result: dict[str, Any] = {}
    for series, pause_us in (("back_to_back", 0), ("paused", LEAN_PAUSE_US)):
        with LeanRuntimeApi(pause_us=pause_us) as api:
            result[series] = _answering_at_once(api, sizes)
        result[series]["pause_us"] = pause_us
    return result


def go(sizes: Sizes) -> dict[str, Any]:
    """The no-op warm path against a Runtime API on Go's net/http (bench/go_api.py), events back to back, as
    :func:`lean` measures it; the server also refuses a ``next`` while an event is unanswered, and the run then
    fails. Without Go: unsupported."""
    if not go_available():
        return {"unsupported": "Go is not installed (apt-get install golang-go)"}
    with GoRuntimeApi() as api:
        return {"back_to_back": {**_answering_at_once(api, sizes), "pause_us": 0}}


def _answering_at_once(api: LeanRuntimeApi, sizes: Sizes) -> dict[str, Any]:
    """Every kind of the no-op scenario against ``api``, rounds interleaved: medians of rounds."""
    def measure() -> float:
        api.run(sizes.warmup)
        return sizes.lean_invocations / api.run(sizes.lean_invocations)

    rounds = interleaved_rounds(api, _compared_kinds(), sizes.rounds, "noop", measure)
    return {kind: {"throughput_per_s": median(values), "us_per_invocation": 1e6 / median(values),
                   "rounds": len(values), "invocations_per_round": sizes.lean_invocations}
            for kind, values in rounds.items()}


SETTLE_AFTER_CRASH_S = 0.8


def _crash_repeats(emulator: BenchEmulator, repeats: int) -> dict[str, Any]:
    """Crash, then the next request: submit both at once; time from the crash's submit to the next's response."""
    submit_to_served: list[float] = []
    error_to_served: list[float] = []
    for _ in range(repeats):
        crash_id = emulator.submit(b'{"crash": true}')
        next_id = emulator.submit(b"{}")
        served = emulator.wait_outcome(next_id, WAIT_S)
        if served.outcome_kind != "response":
            raise RuntimeError(f"the request after a crash was not served: {served.describe()}")
        crash = emulator.record(crash_id)
        served_at = emulator.arrival(next_id)
        submit_to_served.append(served_at.monotonic - crash.submitted_at)
        if crash.outcome_kind == "error":
            error_to_served.append(served_at.monotonic - emulator.arrival(crash_id).monotonic)
        # Let a standby finish its 500 ms init before the next fault, as real faults are not back to back. (Faults
        # closer together than the init time make `spare` wait for its standby: the README says so.)
        time.sleep(SETTLE_AFTER_CRASH_S)
    result = {"crash_submit_to_next_served_ms": median(submit_to_served) * 1000, "repeats": repeats}
    if error_to_served:
        result["error_posted_to_next_served_ms"] = median(error_to_served) * 1000
    return result


def crash(sizes: Sizes) -> dict[str, Any]:
    """Scenario 3: a handler with a 500 ms init calls os._exit(1); how soon is the next request served?"""
    result: dict[str, Any] = {}
    with BenchEmulator(function_timeout_s=60.0) as emulator:
        for strategy in STRATEGIES:
            name = f"lambda-supervisor/{strategy}"
            try:
                with running(Supervisor(emulator, "slow_init.handler", strategy)):
                    emulator.invoke(b"{}", wait=WAIT_S)
                    result[name] = _crash_repeats(emulator, sizes.crash_repeats)
            except Unsupported:
                result[name] = {"unsupported": f"the installed supervisor has no respawn strategy {strategy!r}"}
        if awslambdaric_installed():
            ric = AwsLambdaRic(emulator, "slow_init.handler", restart=True)
            with running(ric):
                emulator.invoke(b"{}", wait=WAIT_S)
                result["awslambdaric"] = _crash_repeats(emulator, sizes.crash_repeats)
                result["awslambdaric"]["restarts"] = ric.restarts
        else:
            result["awslambdaric"] = {"unsupported": "awslambdaric is not installed"}
    return result


def hang(sizes: Sizes) -> dict[str, Any]:
    """Scenario 4: a handler that never returns; from the record's deadline to the Runtime.Timeout post arriving."""
    late: list[float] = []
    with BenchEmulator(function_timeout_s=0.5) as emulator, running(Supervisor(emulator, "bench_app.hang")):
        for _ in range(sizes.hang_repeats):
            polls = emulator.next_poll_count
            record = emulator.invoke(b"{}", wait=WAIT_S)
            if record.outcome_kind != "error" or record.error.error_type != "Runtime.Timeout":
                raise RuntimeError(f"expected Runtime.Timeout, got {record.describe()}")
            late.append(emulator.arrival(record.request_id).wall - record.deadline_ms / 1000)
            emulator.wait_next_polled(polls + 1, WAIT_S)  # the replacement worker is ready
    return {"deadline_to_timeout_posted_ms": median(late) * 1000, "max_ms": max(late) * 1000,
            "repeats": sizes.hang_repeats}


def _vm_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def memory(sizes: Sizes) -> dict[str, Any]:
    """Scenario 5: the supervisor's own RSS at rest and after many invocations; time from crossing the RSS limit
    (the handler's own timestamp right after allocating) to the Runtime.OutOfMemory post arriving."""
    limit_mb, step_mb = 200, 4
    result: dict[str, Any] = {}
    with BenchEmulator(function_timeout_s=60.0) as emulator:
        supervisor = Supervisor(emulator, "bench_app.noop")
        with running(supervisor):
            for _ in range(sizes.warmup):
                emulator.invoke(b"{}", wait=WAIT_S)
            at_rest = _vm_rss_kb(supervisor.pid)
            for _ in range(sizes.memory_invocations):
                record = emulator.invoke(b"{}", wait=WAIT_S)
                if record.outcome_kind != "response":
                    raise RuntimeError(f"unexpected outcome: {record.describe()}")
            after = _vm_rss_kb(supervisor.pid)
        result["supervisor_rss"] = {"at_rest_mb": at_rest / 1024, "after_mb": after / 1024,
                                    "growth_kb": after - at_rest, "invocations": sizes.memory_invocations}
        kill_after: list[float] = []
        killed_during_step = 0  # the kill beat the "after" stamp: measured from the stamp just before the step
        with tempfile.TemporaryDirectory(prefix="bench-oom-") as scratch, running(
                Supervisor(emulator, "bench_app.allocate", extra_env={"LAMBDA_SUPERVISOR_MAX_RSS_MB": str(limit_mb)})):
            for attempt in range(sizes.oom_repeats):
                stamp_file = Path(scratch) / f"stamp-{attempt}"
                polls = emulator.next_poll_count
                event = {"limit_mb": limit_mb, "margin_mb": 2, "step_mb": step_mb, "stamp_file": str(stamp_file)}
                record = emulator.invoke(event, wait=WAIT_S)
                if record.outcome_kind != "error" or record.error.error_type != "Runtime.OutOfMemory":
                    raise RuntimeError(f"expected Runtime.OutOfMemory, got {record.describe()}")
                posted = emulator.arrival(record.request_id).wall
                if not stamp_file.exists():
                    killed_during_step += 1
                    stamp_file = Path(f"{stamp_file}.before")
                kill_after.append(posted - float(stamp_file.read_text()))
                emulator.wait_next_polled(polls + 1, WAIT_S)
        result["rss_limit_to_oom_posted_ms"] = median(kill_after) * 1000
        result["oom"] = {"limit_mb": limit_mb, "final_step_mb": step_mb, "repeats": sizes.oom_repeats,
                         "max_ms": max(kill_after) * 1000, "killed_during_final_step": killed_during_step}
    return result
