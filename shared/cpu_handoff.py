"""Handing an event to the worker without a cross-CPU wake-up: both processes wait on one CPU, the *home* CPU.

The supervisor pins itself to the home CPU; the worker's main thread is pinned there only while it waits for an
event and sends its reply, so a handler (and every thread it starts) may use every CPU the sandbox allows. On a
single-vCPU sandbox nothing is pinned; ``LAMBDA_SUPERVISOR_SHARE_CPU=off`` turns it off (why and by how much: the
README). This module holds the plan both processes agree on; the supervisor passes it on the worker's command line.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from .named_tuple import NamedTuple


class CpuHandoff(NamedTuple):
    """The home CPU, and every CPU the sandbox allows (what a handler may use)."""

    home: int
    cpus: frozenset[int]

    @classmethod
    def plan(cls) -> CpuHandoff | None:
        """The plan for this process's CPUs; None when there is only one (nothing to gain, nothing to pin)."""
        cpus = frozenset(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return None
        return cls(home=max(cpus), cpus=cpus)

    def to_argument(self) -> str:
        """``HOME:CPU,CPU,...``, as the worker's ``--cpu-handoff`` argument."""
        return f"{self.home}:{','.join(str(cpu) for cpu in sorted(self.cpus))}"

    @classmethod
    def from_argument(cls, text: str) -> CpuHandoff:
        home, _, cpus = text.partition(":")
        handoff = cls(home=int(home), cpus=frozenset(int(cpu) for cpu in cpus.split(",")))
        if handoff.home not in handoff.cpus:
            raise ValueError(f"home CPU {handoff.home} is not among the CPUs {sorted(handoff.cpus)}")
        return handoff
