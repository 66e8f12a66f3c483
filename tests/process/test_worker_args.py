"""The worker's command line (shared/worker_args.py): what the supervisor writes, the worker reads back exactly, and
anything else is refused, by the parser and by a worker process started with it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import clean_environment
from lambda_supervisor.shared.cpu_handoff import CpuHandoff
from lambda_supervisor.shared.worker_args import WORKER_COMMAND, WorkerArgs, WorkerArgsError
from lambda_supervisor.supervisor import early_worker

PLAIN = WorkerArgs(in_fd=5, out_fd=8, parent_pid=4242)
EVERYTHING = WorkerArgs(in_fd=5, out_fd=8, parent_pid=4242, template_control_fd=11,
                        cpu_handoff=CpuHandoff(home=1, cpus=frozenset({0, 1})), region_fd=12, hold_fd=13)
REGION_ONLY = WorkerArgs(in_fd=5, out_fd=8, parent_pid=4242, region_fd=12)


@pytest.mark.parametrize("arguments", [PLAIN, EVERYTHING, REGION_ONLY])
def test_what_the_supervisor_writes_the_worker_reads_back(arguments: WorkerArgs) -> None:
    assert WorkerArgs.from_argv(arguments.to_argv()) == arguments


def test_the_worker_inherits_its_pipe_ends_the_template_socket_and_its_region() -> None:
    """Not the hold pipe: only early_worker.py's fork and exec passes it, keeping it by hand."""
    assert PLAIN.inherited_fds == (5, 8)
    assert EVERYTHING.inherited_fds == (5, 8, 11, 12)
    assert REGION_ONLY.inherited_fds == (5, 8, 12)


@pytest.mark.parametrize("region_fd", [None, 12])
@pytest.mark.parametrize("cpu_handoff", [None, CpuHandoff(home=1, cpus=frozenset({0, 1}))])
def test_the_held_first_workers_command_line_is_one_the_worker_reads_exactly(cpu_handoff: CpuHandoff | None,
                                                                               region_fd: int | None) -> None:
    command = early_worker.worker_command(5, 8, cpu_handoff, region_fd, 13)
    assert command[:5] == [sys.executable, *WORKER_COMMAND]
    expected = WorkerArgs(in_fd=5, out_fd=8, parent_pid=os.getpid(), cpu_handoff=cpu_handoff, region_fd=region_fd,
                          hold_fd=13)
    assert WorkerArgs.from_argv(command[5:]) == expected
    assert command[5:] == expected.to_argv()


@pytest.mark.parametrize(("argv", "complaint"), [
    ([], "missing --in-fd, --out-fd, --parent-pid"),
    (["--in-fd", "5", "--out-fd", "8"], "missing --parent-pid"),
    (["--in-fd", "5", "--out-fd", "8", "--parent-pid"], "expected option/value pairs, got 5 words"),
    (["--in-fd", "5", "--out-fd", "8", "--parent-pid", "0"], "--parent-pid must be an integer of at least 1"),
    (["--in-fd", "-1", "--out-fd", "8", "--parent-pid", "7"], "--in-fd must be an integer of at least 0"),
    (["--in-fd", "٣", "--out-fd", "8", "--parent-pid", "7"], "--in-fd must be an integer"),  # a digit, not ASCII
    (["--in-fd", "5", "--out-fd", "8", "--parent-pid", "7", "--in-fd", "6"], "--in-fd given twice"),
    (["--in-fd", "5", "--out-fd", "8", "--parent-pid", "7", "--verbose", "1"], "unknown option '--verbose'"),
    (["--in-fd", "5", "--out-fd", "8", "--parent-pid", "7", "--cpu-handoff", "3:0,1"], "--cpu-handoff '3:0,1'"),
    (["--in-fd", "5", "--out-fd", "8", "--parent-pid", "7", "--cpu-handoff", "x"], "--cpu-handoff 'x'"),
    (["--in-fd", "5", "--out-fd", "8", "--parent-pid", "7", "--hold-fd", "x"], "--hold-fd must be an integer"),
    (["--in-fd", "5", "--out-fd", "8", "--parent-pid", "7", "--region-fd", "-3"], "--region-fd must be an integer"),
    (["--in-fd", "5", "--out-fd", "8", "--parent-pid", "7", "--region-fd", "4", "--region-fd", "4"],
     "--region-fd given twice"),
])
def test_anything_else_is_refused_with_what_is_wrong(argv: list[str], complaint: str) -> None:
    with pytest.raises(WorkerArgsError, match="^" + re.escape(complaint)) as refused:
        WorkerArgs.from_argv(argv)
    assert isinstance(refused.value, ValueError)


def test_a_worker_started_with_a_bad_command_line_says_why_and_exits_2() -> None:
    result = subprocess.run([sys.executable, "-P", "-m", "lambda_supervisor.worker", "--in-fd", "0", "--out-fd", "1"],
                            env=clean_environment(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == "lambda_supervisor.worker: missing --parent-pid\n"


def test_the_worker_reads_its_command_line_without_argparse() -> None:
    """The worker's start pays for every import: its command line costs no argparse."""
    script = ("import sys; from lambda_supervisor.shared.worker_args import WorkerArgs; "
              "import lambda_supervisor.worker.main; print('argparse' in sys.modules)")
    result = subprocess.run([sys.executable, "-P", "-c", script], env=clean_environment(), capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr
