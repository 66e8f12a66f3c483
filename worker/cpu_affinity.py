"""The worker's half of the CPU hand-off (see :mod:`lambda_supervisor.shared.cpu_handoff`).

Only the calling thread is affected: ``sched_setaffinity(0, ...)`` on Linux applies to one thread, so the user's
other threads keep their own CPUs. Each change is one system call and is only made when the state changes. If
the kernel refuses one (the sandbox's CPUs changed under us), the worker stops pinning and leaves its thread free.
"""

from __future__ import annotations

import os

from lambda_supervisor.shared.cpu_handoff import CpuHandoff


class MainThreadCpu:
    """Where the worker's main thread may run: the home CPU while it waits and replies, every CPU while it works."""

    def __init__(self, handoff: CpuHandoff | None) -> None:
        self._handoff = handoff
        self._at_home = False

    def release(self) -> None:
        """Every CPU: before user code runs (init, a handler), so that it and the threads it starts are free."""
        if self._handoff is not None:
            self._set(self._handoff.cpus)
            self._at_home = False

    def settle(self) -> None:
        """The home CPU only: before waiting for an event or writing a reply, so the other side is woken here."""
        if self._handoff is not None and not self._at_home:
            self._set(frozenset((self._handoff.home,)))
            self._at_home = True

    def _set(self, cpus: frozenset[int]) -> None:
        assert self._handoff is not None
        try:
            os.sched_setaffinity(0, cpus)
        except OSError:
            handoff, self._handoff = self._handoff, None
            try:  # noqa: SIM105 - not contextlib, one import less at every start; as free as the kernel lets us be
                os.sched_setaffinity(0, handoff.cpus)
            except OSError:
                pass
