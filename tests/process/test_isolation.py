"""What a hostile handler cannot do to the supervisor, and what it still can (the documented threat model).

test_lifecycle.py has the basic isolation checks; these go further, from both sides: what the handler sees,
and what the test sees in /proc."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import psutil
import pytest

from conftest import StartRuntime, process_gone, wait_for
from process_checks import SOAK, fd_targets, start_soak, strays, zombie_children

# -- what the worker can see ------------------------------------------------------------------------------------


def test_no_runtime_api_address_anywhere_in_the_workers_environment_or_command_line(
    start_runtime: StartRuntime,
) -> None:
    runtime = start_runtime("soak.handler", task_root=SOAK)
    seen = runtime.invoke({"action": "environ"}).json()
    address, port = runtime.emulator.address, str(runtime.emulator.port)
    assert "AWS_LAMBDA_RUNTIME_API" not in seen["env"]
    assert not [name for name, value in seen["env"].items() if address in value or port in value], seen["env"]
    assert port not in seen["cmdline"]


def _runs_as(python: str, uid: int) -> bool:
    """Whether ``python`` starts as ``uid`` and finds lambda_supervisor (its home may be in a directory only root
    can enter, as pyenv's under /root is)."""
    probe = [python, "-c", "import lambda_supervisor.supervisor.cli, psutil"]
    try:
        return subprocess.run(probe, user=uid, group=uid, extra_groups=[], cwd="/", capture_output=True,
                              timeout=60).returncode == 0
    except OSError:
        return False


def _unprivileged_python(request: pytest.FixtureRequest) -> tuple[int, str]:
    """A uid other than root, and an interpreter that uid can run with this checkout installed: ours, or else a
    world-readable interpreter of the same version in a throw-away venv that adds our site-packages. Skips (with
    the reason) when neither exists; when this process is not root it runs as itself."""
    if os.geteuid() != 0:
        return os.geteuid(), sys.executable
    try:
        uid = pwd.getpwnam("nobody").pw_uid
    except KeyError:
        pytest.skip("running as root with no 'nobody' user to run the runtime as")
    if _runs_as(sys.executable, uid):
        return uid, sys.executable
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system_python = shutil.which(version, path="/usr/local/bin:/usr/bin:/bin")
    if system_python is None:
        pytest.skip(f"{sys.executable} cannot be run by uid {uid} and there is no system {version}")
    home = Path(tempfile.mkdtemp(prefix="lambda-supervisor-tests-"))  # pytest's tmp_path is root's alone
    request.addfinalizer(lambda: shutil.rmtree(home, ignore_errors=True))
    shim = home / "venv"
    subprocess.run([system_python, "-m", "venv", "--without-pip", str(shim)], check=True)
    for site_packages in shim.glob("lib/python*/site-packages"):
        ours = sysconfig.get_paths()["purelib"]
        (site_packages / "lambda_supervisor_tests.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    for path in [home, *home.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o005 | (0o001 if path.is_dir() else 0))
    python = str(shim / "bin" / "python")
    if not _runs_as(python, uid):
        pytest.skip(f"neither {sys.executable} nor {system_python} can run lambda_supervisor as uid {uid}")
    return uid, python


def test_a_worker_of_the_same_user_cannot_read_the_supervisors_environment_memory_or_trace_it(
    start_runtime: StartRuntime, request: pytest.FixtureRequest
) -> None:
    """The supervisor is non-dumpable: /proc/<supervisor>/environ (holding the Runtime API address) and mem are
    refused, and ptrace is denied, to a worker running as the same (unprivileged) user. The worker itself stays
    dumpable, and the supervisor still reads the worker's memory (PSS, from smaps_rollup) to enforce its limit."""
    uid, python = _unprivileged_python(request)
    runtime = start_runtime("tree.handler", task_root=SOAK, run_as=uid, python=python,
                            env={"LAMBDA_SUPERVISOR_MAX_RSS_MB": "300"})
    seen = runtime.invoke({"action": "proc_access"}).json()
    assert seen["uid"] == uid and psutil.Process(runtime.process.pid).uids().real == uid
    assert seen["supervisor"] == runtime.process.pid
    assert seen["environ"] == "PermissionError", seen
    assert seen["mem"] == "PermissionError", seen
    assert seen["ptrace"] != "attached", seen
    assert seen["dumpable"] == 1, "the worker must not inherit the supervisor's non-dumpable flag"
    shared = runtime.invoke({"action": "hold_and_fork", "mb": 100, "children": 3, "hold_s": 0.5}, timeout_s=30)
    assert shared.outcome_kind == "response", shared.describe()  # PSS read: 100 MB shared, not 400 MB
    blown = runtime.invoke({"action": "hold_and_fork", "mb": 100, "children": 3, "hold_s": 20, "dirty": True},
                           timeout_s=30)
    assert blown.error.error_type == "Runtime.OutOfMemory", blown.describe()
    assert runtime.invoke({"action": "init_daemon"}).outcome_kind == "response"


def test_the_worker_holds_no_supervisor_descriptor_but_its_pipe_ends_and_its_children_none(
    start_runtime: StartRuntime,
) -> None:
    runtime = start_runtime("soak.handler", task_root=SOAK)
    seen = runtime.invoke({"action": "fds"}).json()
    supervisor = fd_targets(runtime.process.pid)
    own = {int(fd): target for fd, target in seen["own"].items()}
    extra = {fd: target for fd, target in own.items() if fd > 2}
    # and the shared-memory region its large payloads cross (close-on-exec, as the pipe ends are)
    regions = {fd for fd, target in extra.items() if target.startswith("/memfd:lambda-supervisor-payload")}
    assert len(regions) <= 1, own
    extra = {fd: target for fd, target in extra.items() if fd not in regions}
    assert len(extra) == 2 and all(target.startswith("pipe:") for target in extra.values()), own
    supervisor_pipes = {target for target in supervisor.values() if target.startswith("pipe:")}
    assert set(extra.values()) <= supervisor_pipes, "the worker's pipes are the ones the supervisor talks on"
    assert not [target for target in own.values() if target.startswith("socket:")], "no socket of the supervisor"
    assert own[0] == "/dev/null"
    child = {int(fd): target for fd, target in seen["child"].items()}
    assert sorted(child) == [0, 1, 2], f"a handler's child inherits no pipe end: {child}"


@pytest.mark.parametrize("strategy", ["fresh", "spare"])
def test_a_replacement_inherits_only_its_pipe_ends_and_starts_in_the_task_root(
    start_runtime: StartRuntime, strategy: str
) -> None:
    """Workers after the first are started with posix_spawn, not subprocess: a descriptor the supervisor itself
    inherited (here an inheritable /dev/null beyond stderr) is closed in them, as close_fds did, and each moves to
    the task root itself (posix_spawn sets no working directory; the supervisor runs elsewhere)."""
    bootstrap = [sys.executable, "-P", "-u", "-m", "lambda_supervisor.supervisor", "run"]
    opener = ("import os, sys; fd = os.open(os.devnull, os.O_RDONLY); os.set_inheritable(fd, True); "
              f"os.execv(sys.executable, {bootstrap!r})")
    runtime = start_runtime("soak.handler", task_root=SOAK, env={"LAMBDA_SUPERVISOR_RESPAWN": strategy},
                            command=[sys.executable, "-c", opener], cwd=Path(tempfile.gettempdir()))
    first = runtime.invoke({"action": "fds"}).json()
    assert runtime.invoke({"action": "os_exit"}).error.error_type == "Runtime.ExitError"
    replacement = runtime.invoke({"action": "fds"}).json()
    assert replacement["cwd"] == first["cwd"] == str(SOAK)
    own = {int(fd): target for fd, target in replacement["own"].items()}
    extra = {fd: target for fd, target in own.items()
             if fd > 2 and not target.startswith("/memfd:lambda-supervisor-payload")}
    assert len(extra) == 2 and all(target.startswith("pipe:") for target in extra.values()), own
    assert own[0] == "/dev/null"


# -- what the worker cannot make the supervisor do -------------------------------------------------------------


@pytest.mark.parametrize("action", ["send_pickle_header", "send_code_header", "send_pickle_error", "send_code_type"])
def test_a_frame_of_pickle_or_python_code_is_only_an_invalid_worker_message(
    start_runtime: StartRuntime, tmp_path: Path, action: str
) -> None:
    runtime = start_runtime("soak.handler", task_root=SOAK)
    marker = tmp_path / "executed"
    record = runtime.invoke({"action": action, "marker": str(marker)})
    assert record.error.error_type == "Runtime.InvalidWorkerMessage", record.describe()
    assert not marker.exists(), "the supervisor unpickled or evaluated what the worker sent"
    assert runtime.invoke({"action": "ok"}).outcome_kind == "response"
    assert runtime.alive()
    assert not marker.exists()


@pytest.mark.parametrize(
    ("action", "error_type"),
    [("spawn_and_crash", "Runtime.ExitError"), ("spawn_and_hang", "Runtime.Timeout")],
)
def test_every_process_a_handler_started_dies_with_its_worker(
    start_runtime: StartRuntime, action: str, error_type: str
) -> None:
    """A child in the worker's group, one that left it with setsid, and a double-forked daemon that the kernel
    re-parented to the worker (a subreaper): none outlives the worker, and none is left a zombie."""
    runtime, marker = start_soak(start_runtime)
    record = runtime.invoke({"action": action}, timeout_s=1.5)
    assert record.error.error_type == error_type
    assert strays(runtime.process.pid, marker) == []
    assert zombie_children(runtime.process.pid) == []
    assert runtime.invoke({"action": "ok"}).outcome_kind == "response"


def test_a_daemon_counts_against_its_workers_memory_limit(start_runtime: StartRuntime) -> None:
    """A double-forked child left its parent and its session, but the worker (a subreaper) adopted it: its memory
    is the handler's doing, counts against LAMBDA_SUPERVISOR_MAX_RSS_MB, and it dies with the worker."""
    runtime, marker = start_soak(start_runtime, LAMBDA_SUPERVISOR_MAX_RSS_MB="200")
    record = runtime.invoke({"action": "daemon_hog", "mb": 400}, timeout_s=10)
    assert record.error.error_type == "Runtime.OutOfMemory", record.describe()
    assert strays(runtime.process.pid, marker) == []
    assert runtime.invoke({"action": "ok"}).outcome_kind == "response"


def test_a_live_workers_daemons_die_when_it_is_recycled(start_runtime: StartRuntime) -> None:
    runtime, marker = start_soak(start_runtime, LAMBDA_SUPERVISOR_MAX_INVOCATIONS="1")
    spawned = runtime.invoke({"action": "spawn_and_return"}).json()
    for pid in [spawned["pid"], *spawned["children"]]:
        assert process_gone(pid)
    assert strays(runtime.process.pid, marker) == []


def test_a_worker_killed_from_outside_while_idle_leaves_nothing_behind(start_runtime: StartRuntime) -> None:
    """Its children and its daemon (already the supervisor's, by re-parenting) go when it is replaced."""
    runtime, marker = start_soak(start_runtime)
    worker = psutil.Process(runtime.invoke({"action": "spawn_and_return"}).json()["pid"])
    worker.send_signal(signal.SIGKILL)
    wait_for(lambda: not worker.is_running() or worker.status() == "zombie", what="the worker to die")
    # the supervisor, idle, reaps the dead worker at once and kills its children and daemon with it
    wait_for(lambda: strays(runtime.process.pid, marker) == [], what="the dead worker's processes to be killed")
    # killed first, reaped just after: a zombie may show between the two, but none may stay
    wait_for(lambda: zombie_children(runtime.process.pid) == [], what="the killed processes to be reaped")
    assert runtime.invoke({"action": "ok"}).outcome_kind == "response"
    assert strays(runtime.process.pid, marker) == []
    assert "killed orphaned worker descendants" in runtime.log(), "killed in a signal handler, logged after it"
