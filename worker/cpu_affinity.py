"""The worker's half of the CPU hand-off (see :mod:`lambda_supervisor.shared.cpu_handoff`).

Only the calling thread is affected: ``sched_setaffinity(0, ...)`` on Linux applies to one thread, so the user's
other threads keep their own CPUs. Each change is one system call and is only made when the state changes. If
the kernel refuses one (the sandbox's CPUs changed under us), the worker stops pinning and leaves its thread free.
"""

from __future__ import annotations

import os

from lambda_supervisor.shared.cpu_handoff import CpuHandoff


class MainThreadCpu:
    """Where the worker's main thread may run: the home CPU while it waits and replies, every CPU while it works.
    The supervisor may move the home (supervisor/cpu_home.py): an event then says where, and the worker follows."""

    def __init__(self, handoff: CpuHandoff | None) -> None:
        self._handoff = handoff
        self._home = handoff.home if handoff is not None else -1
        self._at_home = False

    def release(self) -> None:
        """Every CPU: before user code runs (init, a handler), so that it and the threads it starts are free."""
        if self._handoff is not None:
            self._set(self._handoff.cpus)
            self._at_home = False

    def settle(self, home: int | None = None) -> None:
        """The home CPU only: before waiting for an event or writing a reply, so the other side is woken here.
        ``home``: the supervisor's home now, if it moved (one of the CPUs the worker was given, else ignored)."""
        if self._handoff is None:
            return
        if home is not None and home != self._home and home in self._handoff.cpus:
            self._home, self._at_home = home, False
        if not self._at_home:
            self._set(frozenset((self._home,)))
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
