"""Handing an event to the worker without a cross-CPU wake-up: both processes wait on one CPU, the *home* CPU.

Every invocation crosses the pipe twice, and each crossing wakes a sleeping process. On a sandbox with several
vCPUs the scheduler wakes a process on whichever CPU is idle, which is rarely the one the waker is about to leave;
the wake-up is then an inter-processor interrupt to a halted vCPU, and the code runs on cold caches. In ``bench/``
(a 2-vCPU Firecracker VM, like Lambda's) that made about a tenth of the no-op round trip. The remedy is to make
both ends of the hand-off wait on the same CPU:

- the supervisor pins itself to the home CPU (it is one thread and never needs more);
- the worker's *main thread* is pinned to the home CPU only while it waits for an event and while it sends the
  reply. From the moment an event arrives until the handler returns it may run on every CPU the sandbox allows,
  and so may every thread the handler starts; threads started during init are never pinned.

So a handler that uses several vCPUs keeps them, and on a single-vCPU sandbox (Lambda below 1,769 MB) nothing is
pinned at all. ``LAMBDA_SUPERVISOR_SHARE_CPU=off`` turns it off.

This module holds the plan both processes agree on; the supervisor passes it to the worker on its command line.
"""

from __future__ import annotations

import os
from typing import NamedTuple


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
