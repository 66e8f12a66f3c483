"""What the main loop needs from a worker and from where its workers come from, and nothing more.

:class:`.worker_process.WorkerProcess` and the factories of respawn.py are the real ones; a test can stand in a
fake worker that returns scripted outcomes, and run the loop without a process.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing's own costs ~4 ms and ~0.5 MB at each cold start; mypy reads it as typing's

if TYPE_CHECKING:  # only mypy reads these classes: their importers import them under TYPE_CHECKING too
    from collections.abc import Callable, Sequence
    from typing import Protocol

    from lambda_supervisor.shared.cpu_handoff import CpuHandoff

    from .outcome import Outcome
    from .runtime_api import Invocation


    class Worker(Protocol):
        """A ready worker, as the loop uses it."""

        pid: int
        invocations: int  # events it has been handed
        started_monotonic: float
        ready_seconds: float | None  # how long its init took
        peak_rss_bytes: int
        last_rss_bytes: int  # as read when it last answered (own_rss_bytes)
        zombie_children: int  # as counted when it last answered (count_zombie_children)
        exit_description: str | None  # once it is reaped: its exit status or signal

        def invoke(self, invocation: Invocation, *, soft_timeout_ms: int = 0,
                   shutdown_requested: Callable[[], bool] = ..., home_cpu: int | None = None) -> Outcome: ...

        def has_exited(self) -> bool: ...

        def own_rss_bytes(self) -> int: ...

        def count_zombie_children(self, at_least: int) -> int: ...

        def kill(self) -> None: ...

        def retire(self, grace_s: float) -> None: ...

        def terminate(self, grace_s: float) -> None: ...


    class WorkerSource(Protocol):
        """Where the loop's workers come from: a respawn strategy (respawn.py)."""

        strategy: str
        cpu_handoff: CpuHandoff | None  # what every worker it starts is told; None: no CPU is shared
        interrupt_fd: int | None  # readable once shutdown is requested: every wait for a starting worker ends

        def start(self) -> Worker: ...

        def start_many(self, count: int) -> Sequence[Worker]: ...

        def replace(self) -> Worker: ...

        def maintain(self) -> None: ...

        def upkeep_due(self) -> bool: ...

        def reserves(self) -> Sequence[Worker]: ...

        def close(self, grace_s: float) -> None: ...
