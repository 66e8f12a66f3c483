"""Which processes belong to which worker, and what that decides: a worker's descendants die with it and only with
it (however often they were orphaned), count against its memory limit once per page, and nothing outlives the
runtime. Every test runs under whichever respawn strategy TEST_RESPAWN_STRATEGY names.
"""

from __future__ import annotations

import signal
import uuid
from typing import Any

import psutil

from conftest import Runtime, StartRuntime, process_gone, wait_for
from process_checks import SOAK, marked_processes, strays, worker_processes, zombie_children


def start_tree(start_runtime: StartRuntime, **env: Any) -> tuple[Runtime, str]:
    """A runtime serving tests/task_roots/soak/tree.py, with a fresh SOAK_MARKER; returns it and the marker."""
    marker = uuid.uuid4().hex
    runtime = start_runtime("tree.handler", task_root=SOAK, env={"SOAK_MARKER": marker, **env})
    return runtime, marker


def owned_by(pid: int, marker: str) -> list[int]:
    """The live marked processes that worker (or template) ``pid`` started."""
    found = []
    for process in marked_processes(marker):
        try:
            if process.environ().get("SOAK_WORKER") == str(pid):
                found.append(process.pid)
        except psutil.Error:
            continue
    return found


# -- a daemon's own children (bug 3) -----------------------------------------------------------------------------


def test_a_daemons_own_child_dies_with_the_worker_that_crashed(start_runtime: StartRuntime) -> None:
    """The daemon's child is orphaned a second time when the daemon is killed: it must not survive."""
    runtime, marker = start_tree(start_runtime)
    record = runtime.invoke({"action": "daemon_family_and_crash"})
    assert record.error.error_type == "Runtime.ExitError", record.describe()
    assert strays(runtime.process.pid, marker) == []
    assert zombie_children(runtime.process.pid) == []
    assert runtime.invoke({"action": "hold", "mb": 1, "hold_s": 0}).outcome_kind == "response"


def test_a_dead_workers_leftover_is_not_counted_against_the_next_worker(start_runtime: StartRuntime) -> None:
    """A 180 MB daemon child left by a crashed worker, summed into the next worker's 80 MB, made an innocent
    request fail as out of memory."""
    runtime, marker = start_tree(start_runtime, LAMBDA_SUPERVISOR_MAX_RSS_MB="250")
    record = runtime.invoke({"action": "daemon_family_and_crash", "mb": 180}, timeout_s=30)
    assert record.error.error_type == "Runtime.ExitError", record.describe()
    record = runtime.invoke({"action": "hold", "mb": 80, "hold_s": 1.0}, timeout_s=30)
    assert record.outcome_kind == "response", record.describe()
    assert strays(runtime.process.pid, marker) == []


def test_a_worker_killed_from_outside_leaves_no_daemon_child_behind(start_runtime: StartRuntime) -> None:
    """The worker dies without being asked: its daemon, and the daemon's child, are killed by the idle supervisor."""
    runtime, marker = start_tree(start_runtime)
    family = runtime.invoke({"action": "daemon_family_and_return"}).json()
    worker = psutil.Process(family["pid"])
    worker.send_signal(signal.SIGKILL)
    wait_for(lambda: process_gone(family["daemon"]) and process_gone(family["child"]),
             what="the dead worker's daemon and its child to be killed and reaped")
    assert strays(runtime.process.pid, marker) == []
    assert zombie_children(runtime.process.pid) == []


def test_nothing_a_handler_started_outlives_the_runtime(start_runtime: StartRuntime) -> None:
    """After SIGTERM, no daemon (nor its child) is left running re-parented to init."""
    runtime, marker = start_tree(start_runtime)
    family = runtime.invoke({"action": "daemon_family_and_return"}).json()
    assert runtime.stop() == 0
    wait_for(lambda: not marked_processes(marker), timeout=10,
             what=f"no process of the handler's left after shutdown (daemon {family['daemon']}, "
                  f"its child {family['child']})")


# -- a healthy worker's own daemons (bug 4) --------------------------------------------------------------------


def test_a_daemon_is_adopted_by_the_worker_that_started_it_not_by_the_supervisor(start_runtime: StartRuntime) -> None:
    """Ownership is the process tree: a double-forked daemon and its child stay under their worker."""
    runtime, _ = start_tree(start_runtime)
    family = runtime.invoke({"action": "daemon_family_and_return"}).json()
    assert psutil.Process(family["daemon"]).ppid() == family["pid"]
    assert psutil.Process(family["child"]).ppid() == family["daemon"]
    assert family["daemon"] not in [child.pid for child in psutil.Process(runtime.process.pid).children()]



def test_a_workers_init_daemon_lives_as_long_as_that_worker_and_no_longer(start_runtime: StartRuntime) -> None:
    """Under spare, the standby started a daemon in its init; under fork, the template did. Replacing the active
    worker must not kill them: the promoted standby (or the next forked worker) still has its daemon. The old
    worker's own init daemon (fresh, spare) dies with the old worker."""
    runtime, marker = start_tree(start_runtime, TREE_INIT_DAEMON="1")
    first = runtime.invoke({"action": "init_daemon"}).json()
    assert first["alive"], first
    crash = runtime.invoke({"action": "daemon_family_and_crash"})
    assert crash.error.error_type == "Runtime.ExitError", crash.describe()
    second = runtime.invoke({"action": "init_daemon"}).json()
    assert second["pid"] != first["pid"]
    assert second["alive"], f"the new worker's init daemon was killed when the old worker was replaced: {second}"
    if second["daemon"] != first["daemon"]:  # fresh and spare: it was the old worker's own
        assert process_gone(first["daemon"]), "the dead worker's init daemon outlived it"
    assert strays(runtime.process.pid, marker) == []


def test_a_reserve_workers_daemon_dies_with_that_reserve_only(start_runtime: StartRuntime) -> None:
    """Kill the standby (spare) or the template (fork) from outside: its init daemon dies with it, the active
    worker's own daemon does not. Under fresh there is no reserve: the active worker's daemon is left alone."""
    runtime, marker = start_tree(start_runtime, TREE_INIT_DAEMON="1")
    active = runtime.invoke({"action": "init_daemon"}).json()
    reserves = [worker.pid for worker in worker_processes(runtime.process.pid) if worker.pid != active["pid"]]
    reserve_daemons: list[int] = []
    for reserve in reserves:
        daemons = wait_for(lambda reserve=reserve: owned_by(reserve, marker), what=f"the daemon of reserve {reserve}")
        reserve_daemons += daemons
        psutil.Process(reserve).send_signal(signal.SIGKILL)
        wait_for(lambda daemons=daemons: all(process_gone(pid) for pid in daemons),
                 what=f"reserve {reserve}'s daemons {daemons} to die with it")
    after = runtime.invoke({"action": "init_daemon"}).json()
    assert after["pid"] == active["pid"]
    if active["daemon"] not in reserve_daemons:  # under fork, the active worker's init daemon is the template's
        assert after["alive"], "the active worker's daemon died with a reserve"
    assert strays(runtime.process.pid, marker) == []


# -- memory: shared pages once (PSS) --------------------------------------------------------------------------


def test_children_sharing_the_handlers_memory_are_not_counted_once_each(start_runtime: StartRuntime) -> None:
    """150 MB forked into 3 idle children is 600 MB of summed RSS but about 150 MB of memory: no OOM at 400."""
    runtime, _ = start_tree(start_runtime, LAMBDA_SUPERVISOR_MAX_RSS_MB="400")
    record = runtime.invoke({"action": "hold_and_fork", "mb": 150, "children": 3, "hold_s": 1.0}, timeout_s=30)
    assert record.outcome_kind == "response", record.describe()


def test_children_that_copy_the_handlers_memory_still_count_in_full(start_runtime: StartRuntime) -> None:
    """The same children writing their copy hold 600 MB for real: out of memory, reported as PSS."""
    runtime, marker = start_tree(start_runtime, LAMBDA_SUPERVISOR_MAX_RSS_MB="400")
    record = runtime.invoke({"action": "hold_and_fork", "mb": 150, "children": 3, "hold_s": 20.0, "dirty": True},
                            timeout_s=30)
    assert record.error.error_type == "Runtime.OutOfMemory", record.describe()
    assert "PSS" in record.error.error_message and "> 400 MB" in record.error.error_message
    assert strays(runtime.process.pid, marker) == []


# -- zombies the worker adopts ------------------------------------------------------------------------------------


def test_a_worker_never_takes_the_exit_status_of_its_handlers_children(start_runtime: StartRuntime) -> None:
    """The worker is a subreaper but reaps nothing: a child started in one invocation and waited for in a later one
    still gives its own exit status (a stolen one would read as 0)."""
    runtime, _ = start_tree(start_runtime)
    started = runtime.invoke({"action": "start_child", "status": 7}).json()
    waited = runtime.invoke({"action": "wait_child"}).json()
    assert waited["pid"] == started["pid"]
    assert (waited["status"], waited["run"]) == (7, 9)


def test_a_worker_piling_up_adopted_zombies_is_recycled_between_requests(start_runtime: StartRuntime) -> None:
    """Orphans the worker adopted and that exited stay its zombies (it cannot reap them safely); once it holds 64,
    it is recycled after its reply, and the supervisor reaps them all."""
    runtime, _ = start_tree(start_runtime)
    few = runtime.invoke({"action": "leave_zombies", "count": 10}).json()
    assert few["zombies"] >= 10
    assert runtime.invoke({"action": "hold", "mb": 1, "hold_s": 0}).json()["pid"] == few["pid"], "recycled too soon"
    many = runtime.invoke({"action": "leave_zombies", "count": 60}).json()
    assert many["pid"] == few["pid"] and many["zombies"] >= 64
    after = runtime.invoke({"action": "hold", "mb": 1, "hold_s": 0}).json()
    assert after["pid"] != few["pid"]
    assert "worker replaced: reason=recycle-zombies" in runtime.log()
    assert zombie_children(runtime.process.pid) == []
