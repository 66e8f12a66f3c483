"""A worker handle reaps its own pid, and a reap that finds no child is never a crash: the pid of a forked worker
killed before the template's intermediate process exited is reaped once it is re-parented to the supervisor, and
a pid some other waiter already took is "already gone". Each case runs in a process of its own (it must be a child
subreaper, as the supervisor is, and pytest must not be one)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import clean_environment

PRELUDE = textwrap.dedent("""
    import os, threading, time
    from lambda_supervisor.shared.prctl import set_child_subreaper
    from lambda_supervisor.supervisor.process_tree import Children
    from lambda_supervisor.supervisor.worker_limits import WorkerLimits
    from lambda_supervisor.supervisor.worker_process import WorkerProcess

    assert set_child_subreaper(True)
    limits = WorkerLimits(1 << 30, 1 << 20, 1 << 20, 0.1, 0.02, 0.5)
    children = Children()

    def sleeper_pipes():
        (to_read, to_write), (from_read, from_write) = WorkerProcess.make_pipes()
        return to_read, to_write, from_read, from_write
""")

THROUGH_AN_INTERMEDIATE = PRELUDE + textwrap.dedent("""
    # as the fork template makes a worker: a grandchild, whose pid we learn while its parent still lives
    to_read, to_write, from_read, from_write = sleeper_pipes()
    pid_read, pid_write = os.pipe()
    go_read, go_write = os.pipe()
    intermediate = os.fork()
    if intermediate == 0:
        worker = os.fork()
        if worker == 0:
            time.sleep(60)
            os._exit(0)
        os.write(pid_write, str(worker).encode())
        os.read(go_read, 1)
        os._exit(0)
    for fd in (to_read, from_write, pid_write, go_read):
        os.close(fd)
    worker_pid = int(os.read(pid_read, 32))
    worker = WorkerProcess.adopt(worker_pid, to_write, from_read, limits, children)

    def let_the_intermediate_exit():
        time.sleep(0.3)  # the kill below is under way by then: its reap finds no child of ours yet
        os.write(go_write, b"g")
        os.waitpid(intermediate, 0)

    threading.Thread(target=let_the_intermediate_exit).start()
    worker.kill()
    print("reaped:", worker.exit_description, worker_pid not in children.workers)
""")

REAPED_ELSEWHERE = PRELUDE + textwrap.dedent("""
    to_read, to_write, from_read, from_write = sleeper_pipes()
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    os.close(to_read)
    os.close(from_write)
    worker = WorkerProcess.adopt(pid, to_write, from_read, limits, children)
    os.kill(pid, 9)
    os.waitpid(pid, 0)  # another waiter takes its exit status first
    worker.kill()
    worker.kill()  # idempotent
    print("gone:", worker.exit_description, pid not in children.workers)
""")


def run(script: str) -> str:
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=20,
                            env=clean_environment())
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_forked_worker_killed_before_its_adoption_is_reaped_once_re_parented() -> None:
    assert run(THROUGH_AN_INTERMEDIATE) == "reaped: signal SIGKILL True"


def test_a_worker_whose_exit_status_another_waiter_took_is_already_gone_not_a_crash() -> None:
    output = run(REAPED_ELSEWHERE)
    assert output.startswith("gone: exit status unknown (already reaped)") and output.endswith("True"), output
