"""``lambda-supervisor invoke``: send a file of events to a function and summarise how it fared.

The events go, one at a time or ``--concurrency K`` at once, to an invoke endpoint: a running ``serve`` (or AWS's
emulator, or a container) given by ``--url``, or one this command starts itself (the emulator plus a real runtime,
whose log it keeps in a file). Each result is printed as it arrives, with a progress line on a terminal; at the end,
counts by outcome (``ok`` or the ``errorType``), throughput, latency percentiles and, for an embedded runtime,
worker restarts by reason (and by slot, when the runtime's log names them).
"""

from __future__ import annotations

import json
import math
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import requests

OK = "ok"


class EventFileError(ValueError):
    """The events file cannot be read as JSON or JSON lines."""


def load_events(path: Path) -> list[bytes]:
    """The events in ``path``: a JSON array (one event per element), one JSON document, or JSON lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise EventFileError(f"cannot read {path}: {error}") from None
    try:
        whole = json.loads(text)
    except ValueError:
        pass
    else:
        if isinstance(whole, list):
            return [json.dumps(event).encode() for event in whole]
        return [text.strip().encode()]
    events = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            json.loads(line)
        except ValueError as error:
            raise EventFileError(f"{path}:{number}: not JSON: {error}") from None
        events.append(line.strip().encode())
    if not events:
        raise EventFileError(f"{path} holds no events")
    return events


@dataclass(frozen=True)
class Result:
    number: int
    outcome: str  # "ok", the errorType, or "http-STATUS" / "unreachable" when no answer came
    latency_ms: float
    detail: str
    answered: bool


def invoke_one(session: requests.Session, url: str, number: int, event: bytes, timeout_s: float) -> Result:
    started = time.monotonic()
    try:
        response = session.post(url, data=event, timeout=(5.0, timeout_s))
    except requests.RequestException as error:
        return Result(number, "unreachable", (time.monotonic() - started) * 1000, str(error)[:200], False)
    latency_ms = (time.monotonic() - started) * 1000
    if response.status_code != 200:
        return Result(number, f"http-{response.status_code}", latency_ms, response.text[:200], False)
    if "X-Amz-Function-Error" not in response.headers:
        return Result(number, OK, latency_ms, response.text[:120], True)
    try:
        body = response.json()
        outcome = str(body.get("errorType") or "Unhandled")
        detail = str(body.get("errorMessage") or "").split(" Error: ", 1)[-1]
    except (ValueError, AttributeError):
        outcome, detail = "Unhandled", response.text[:200]
    return Result(number, outcome, latency_ms, detail[:120], True)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


class Progress:
    """One self-overwriting status line on a terminal (stderr); nothing when stderr is not a terminal."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total = total
        self.stream = stream
        self.enabled = stream.isatty()
        self.counts: Counter[str] = Counter()

    def clear(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def update(self, result: Result) -> None:
        self.counts[OK if result.outcome == OK else "failed"] += 1
        if self.enabled:
            done = sum(self.counts.values())
            width = 30
            bar = "#" * (width * done // self.total)
            self.stream.write(f"\r[{bar:<{width}}] {done}/{self.total}  ok {self.counts[OK]}  "
                              f"failed {self.counts['failed']}  last {result.latency_ms:.1f} ms")
            self.stream.flush()


def send_all(url: str, events: list[bytes], count: int, timeout_s: float, out: TextIO = sys.stdout,
             concurrency: int = 1) -> list[Result]:
    """Send ``count`` events (cycling through ``events``), ``concurrency`` in flight at once, each sender on its own
    connection; print each result as it arrives. Returns the results in event order."""
    progress = Progress(count)
    results: list[Result] = []
    lock = threading.Lock()
    numbers = iter(range(1, count + 1))

    def sender() -> None:
        with requests.Session() as session:
            session.trust_env = False  # a local endpoint: no proxy
            while True:
                with lock:
                    number = next(numbers, None)
                if number is None:
                    return
                result = invoke_one(session, url, number, events[(number - 1) % len(events)], timeout_s)
                with lock:
                    results.append(result)
                    progress.clear()
                    print(f"{number:>5}  {result.outcome:<28} {result.latency_ms:>9.1f} ms  {result.detail}",
                          file=out, flush=True)
                    progress.update(result)

    if concurrency == 1:
        sender()  # in this thread, as before: Ctrl-C stops it where it is
    else:
        senders = [threading.Thread(target=sender, name=f"invoke-sender-{n}", daemon=True) for n in range(concurrency)]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join()
    progress.clear()
    return sorted(results, key=lambda result: result.number)


def restarts_in_log(log: str) -> Counter[str]:
    """Worker restarts by reason, read from a runtime log (Text or JSON format)."""
    return Counter(re.findall(r"worker replaced: .*?\breason=([\w-]+)", log))


def restarts_by_slot(log: str) -> Counter[str]:
    """Worker restarts by slot, for a runtime whose replacement lines name their slot (``slot=N``)."""
    return Counter(re.findall(r"worker replaced: .*?\bslot=(\w+)", log))


def summarize(results: list[Result], elapsed_s: float, restarts: Counter[str] | None, out: TextIO,
              concurrency: int = 1, slots: Counter[str] | None = None) -> None:
    counts = Counter(result.outcome for result in results)
    latencies = [result.latency_ms for result in results]
    rate = f"{len(results) / elapsed_s:.1f}" if elapsed_s > 0 else "n/a"
    print(f"\n{len(results)} invocations in {elapsed_s:.1f} s, concurrency {concurrency}: {rate} per second", file=out)
    print(f"{'outcome':<32} {'count':>6}", file=out)
    for outcome, number in sorted(counts.items(), key=lambda item: (item[0] != OK, -item[1], item[0])):
        print(f"{outcome:<32} {number:>6}", file=out)
    if latencies:
        print(f"latency ms: p50 {percentile(latencies, 0.5):.1f}  p99 {percentile(latencies, 0.99):.1f}  "
              f"max {max(latencies):.1f}", file=out)
    if restarts is not None:
        shown = ", ".join(f"{reason} {number}" for reason, number in restarts.most_common()) or "none"
        print(f"worker restarts: {sum(restarts.values())} ({shown})", file=out)
    if slots:
        shown = ", ".join(f"slot {slot}: {number}" for slot, number in sorted(slots.items(), key=_slot_order))
        print(f"worker restarts by slot: {shown}", file=out)


def _slot_order(item: tuple[str, int]) -> tuple[int, str]:
    return len(item[0]), item[0]  # numbers in numeric order: slot 2 before slot 10
