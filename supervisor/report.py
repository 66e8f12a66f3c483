"""The REPORT line: one summary per invocation, in the spirit of Lambda's own.

    REPORT RequestId: 8f5…  Duration: 12.34 ms  Worker PID: 4242  Max RSS: 61.2 MB  Outcome: success

fields separated by tabs as Lambda separates them; ``Outcome`` is ``success`` or the posted ``errorType``, and a
``Fault`` field names the reason when the worker has to be replaced. The line is an ``invocation`` event, so the
JSON log format carries the same values as fields and the metrics recorder counts it. It is opt-in
(``LAMBDA_SUPERVISOR_REPORT=on``): Lambda writes its own REPORT line for every invocation, and users pay for both.
"""

from __future__ import annotations

from lambda_supervisor.shared.printable import log_safe

from .events import emit_line
from .outcome import Outcome, Response
from .runtime_api import Invocation

TYPE_CHECKING = False  # typing's own costs ~4 ms and ~0.5 MB at each cold start; mypy reads it as typing's

if TYPE_CHECKING:
    from .worker_handle import Worker


def report_invocation(invocation: Invocation, worker: Worker, outcome: Outcome, finished: float) -> None:
    """Emit the REPORT line for an invocation whose outcome has been posted. Duration runs from the event's arrival
    to its outcome (``finished``, a ``time.monotonic()``), not counting the post."""
    duration_ms = (finished - invocation.received_monotonic) * 1000
    max_rss_mb = worker.peak_rss_bytes / 2**20
    result = "success" if isinstance(outcome, Response) else outcome.error_type
    fault = str(outcome.fault) if outcome.fault is not None else None
    line = (f"REPORT RequestId: {log_safe(invocation.request_id)}\tDuration: {duration_ms:.2f} ms\t"
            f"Worker PID: {worker.pid}\tMax RSS: {max_rss_mb:.1f} MB\tOutcome: {log_safe(result)}"
            + (f"\tFault: {fault}" if fault else ""))
    emit_line("invocation", line, request_id=invocation.request_id, duration_ms=round(duration_ms, 3),
              worker_pid=worker.pid, max_rss_mb=round(max_rss_mb, 1), outcome=result, fault=fault,
              served=worker.invocations)
