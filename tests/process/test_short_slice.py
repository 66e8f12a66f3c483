"""The short scheduler slice (supervisor/short_slice.py, LAMBDA_SUPERVISOR_SHORT_SLICE): the supervisor's slot thread
has it, and none of what it starts (workers, replacements, a handler's own processes) inherits it or sees a trace of
it; with the setting off, nothing changes at all."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import TASK_ROOTS, StartRuntime, wait_for
from lambda_supervisor.supervisor.short_slice import SHORT_SLICE_NS, current_slice_ns, shorten

COLD = TASK_ROOTS / "cold"


def _custom_slices() -> bool:
    """Whether this kernel reports a slice (6.12 and later): earlier ones report 0 and ignore the request."""
    try:
        return current_slice_ns() > 0
    except OSError:
        return False


needs_custom_slices = pytest.mark.skipif(not _custom_slices(), reason="the kernel has no custom scheduler slices")


@needs_custom_slices
def test_the_supervisor_waits_with_the_short_slice_and_its_workers_do_not(start_runtime: StartRuntime) -> None:
    default = current_slice_ns(os.getpid())
    assert default != SHORT_SLICE_NS, "the test runner itself must start at the default"
    runtime = start_runtime("trivial.handler", task_root=COLD, env={"LAMBDA_SUPERVISOR_RESPAWN": "fresh"})
    assert current_slice_ns(runtime.process.pid) == default, "not on the way to the first response"
    first = runtime.invoke({}).json()
    wait_for(lambda: current_slice_ns(runtime.process.pid) == SHORT_SLICE_NS,
             what="the short slice, asked while the first post is in flight")
    assert current_slice_ns(first["pid"]) == default
    assert first["policy"] == os.SCHED_OTHER, "the handler reads its policy as under awslambdaric"
    assert runtime.invoke({"action": "crash"}).error.error_type == "Runtime.ExitError"
    replacement = runtime.invoke({}).json()  # started by the supervisor after it took the short slice
    assert replacement["pid"] != first["pid"]
    assert current_slice_ns(replacement["pid"]) == default, "the slice is not inherited"
    assert replacement["policy"] == os.SCHED_OTHER, "nor is the reset-on-fork flag that keeps it so"


@needs_custom_slices
def test_with_the_setting_off_every_process_keeps_the_default_slice(start_runtime: StartRuntime) -> None:
    default = current_slice_ns(os.getpid())
    assert default != SHORT_SLICE_NS, "the test runner itself must start at the default"
    runtime = start_runtime("trivial.handler", task_root=COLD, env={"LAMBDA_SUPERVISOR_SHORT_SLICE": "off"})
    served = runtime.invoke({}).json()["pid"]
    assert runtime.invoke({}).json()["pid"] == served  # a second post: the first one's upkeep is over
    assert current_slice_ns(runtime.process.pid) == default
    assert current_slice_ns(served) == default


@needs_custom_slices
def test_shorten_keeps_the_nice_value_and_leaves_other_policies_alone() -> None:
    with subprocess.Popen(["sleep", "30"]) as niced, subprocess.Popen(["sleep", "30"]) as batch:
        try:
            os.setpriority(os.PRIO_PROCESS, niced.pid, 5)
            assert shorten(niced.pid)
            assert current_slice_ns(niced.pid) == SHORT_SLICE_NS
            assert shorten(niced.pid), "asked again, with its reset-on-fork flag set by the first time"
            assert os.getpriority(os.PRIO_PROCESS, niced.pid) == 5
            os.sched_setscheduler(batch.pid, os.SCHED_BATCH, os.sched_param(0))
            before = current_slice_ns(batch.pid)
            assert not shorten(batch.pid)
            assert current_slice_ns(batch.pid) == before
            assert os.sched_getscheduler(batch.pid) == os.SCHED_BATCH
        finally:
            niced.kill()
            batch.kill()
    assert not shorten(niced.pid), "a process that is gone"
