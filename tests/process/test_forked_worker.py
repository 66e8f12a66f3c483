"""The first worker forked from the bootstrap's interpreter without exec (supervisor/early_worker.py,
worker/forked_start.py) is, to user code, the worker an exec would have started: the same probe handler runs in the
forked first worker and in an exec'd replacement (after a crash), and what each reports is compared."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from conftest import TASK_ROOTS, Runtime, StartRuntime

FORKED = TASK_ROOTS / "forked"
#: How the bootstraps start the supervisor: the flags a worker's interpreter gets, so that a fork of it can be one.
BOOTSTRAP = [sys.executable, "-P", "-u", "-m", "lambda_supervisor.supervisor", "run"]
LOG_SOCKET = "/tmp/lambda-supervisor-test-log-socket-5f0c1e"  # withheld with one slot (never connected to)
CANARY = "forked-worker-canary-93b2d7"  # a variable the worker keeps: the memory scan must find it
#: Set by the supervisor's defaults when unset: only os.environ has them in a forked worker, not its original
#: environment block (/proc/self/environ), where an exec'd worker has them.
DEFAULTED = {"AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
             "LAMBDA_SUPERVISOR_MAX_RESPONSE_BYTES", "AWS_LAMBDA_LOG_FORMAT", "AWS_LAMBDA_LOG_LEVEL",
             "LAMBDA_SUPERVISOR_RLIMITS"}


def _start(start_runtime: StartRuntime, **env: str) -> Runtime:
    return start_runtime("probe.handler", task_root=FORKED, command=BOOTSTRAP,
                         env={"LAMBDA_SUPERVISOR_RESPAWN": "fresh", "FORKED_CANARY": CANARY,
                              "_LAMBDA_TELEMETRY_LOG_FD_PROVIDER_SOCKET": LOG_SOCKET, **env})


def _probe(runtime: Runtime) -> dict[str, Any]:
    needles = [runtime.emulator.address, LOG_SOCKET, CANARY]
    record = runtime.invoke({"needles_hex": [needle.encode().hex() for needle in needles]}, timeout_s=60)
    assert record.outcome_kind == "response", record.describe()
    return record.json()  # type: ignore[no-any-return]


def _without_hold(argv: list[str]) -> list[str]:
    return [part for part in argv if part != "--hold-fd"]


def test_the_supervisor_is_non_dumpable_before_the_forked_worker_runs_user_code(
        start_runtime: StartRuntime, request: pytest.FixtureRequest) -> None:
    """It becomes so after the fork (ctypes is imported after it), but before it releases the held worker: the
    user's init, run as an unprivileged user, cannot read the supervisor's environment."""
    from test_isolation import _unprivileged_python

    uid, python = _unprivileged_python(request)
    runtime = start_runtime("probe.handler", task_root=FORKED, run_as=uid, python=python,
                            command=[python, *BOOTSTRAP[1:]])
    seen = _probe(runtime)
    assert _forked_in_place(seen), seen["cmdline"]
    assert seen["at_init"]["parent_environ"] == "PermissionError" and seen["at_init"]["uid"] == uid, seen["at_init"]
    assert seen["dumpable"] == 1


def _forked_in_place(seen: dict[str, Any]) -> bool:
    """/proc/self/cmdline is the one trace of the fork: the argument area is still the bootstrap's."""
    return "lambda_supervisor.supervisor" in seen["cmdline"]


def test_the_forked_first_worker_holds_no_trace_of_the_withheld_variables(start_runtime: StartRuntime) -> None:
    seen = _probe(_start(start_runtime))
    assert _forked_in_place(seen), seen["cmdline"]
    assert seen["os_environ"] == seen["posix_environ"] == seen["getenv"] == seen["proc_environ"] == [], seen
    assert seen["memory"][:2] == [0, 0], "the Runtime API address or the log socket is still in the worker's memory"
    assert seen["memory"][2] >= 1, "the scan finds a variable the worker keeps"


def test_the_forked_first_worker_is_what_an_execd_worker_is(start_runtime: StartRuntime) -> None:
    runtime = _start(start_runtime)
    forked = _probe(runtime)
    assert runtime.invoke({"action": "crash"}).error.error_type == "Runtime.ExitError"
    execd = _probe(runtime)
    assert _forked_in_place(forked) and not _forked_in_place(execd), (forked["cmdline"], execd["cmdline"])
    assert forked["pid"] != execd["pid"]
    assert execd["memory"][:2] == forked["memory"][:2] == [0, 0]
    for seen in (forked, execd):
        seen["argv"], seen["orig_argv"] = _without_hold(seen["argv"]), _without_hold(seen["orig_argv"])
        seen["fds"] = sorted(kind for _, kind in seen["fds"])
    names = set(forked.pop("proc_environ_names"))
    assert names <= set(execd["proc_environ_names"]) and set(execd.pop("proc_environ_names")) - names <= DEFAULTED
    forked_modules, execd_modules = set(forked.pop("modules")), set(execd.pop("modules"))
    assert (forked_modules - execd_modules, execd_modules - forked_modules) == (set(), set())
    for key in ("pid", "cmdline", "memory"):
        del forked[key], execd[key]
    assert forked == execd
    assert forked["spawn"] == [None, [], 0], "a spawned process ran no __main__, and none of the supervisor's"
    assert forked["dumpable"] == 1 and forked["threads"] == 1 and forked["supervisor_modules"] == []
    # off while our modules load (supervisor/__main__.py, worker/start.py): on, as ever, for the user's code
    assert forked["collector"] == forked["at_init"]["collector"] == [True, [700, 10, 10], 0]


@pytest.mark.parametrize(("command", "env"), [
    ([sys.executable, "-P", "-m", "lambda_supervisor.supervisor", "run"], {}),
    ([sys.executable, "-u", "-m", "lambda_supervisor.supervisor", "run"], {}),
    (BOOTSTRAP, {"PYTHONPATH": "relative-to-the-working-directory"}),
], ids=["without -u", "without -P", "relative PYTHONPATH"])
def test_a_bootstrap_started_otherwise_execs_its_first_worker(start_runtime: StartRuntime, command: list[str],
                                                              env: dict[str, str]) -> None:
    """A fork of it would not be what the worker's own interpreter is (its flags, or its sys.path)."""
    runtime = start_runtime("probe.handler", task_root=FORKED, command=command, env=env)
    seen = _probe(runtime)
    assert not _forked_in_place(seen) and seen["memory"][:1] == [0]
