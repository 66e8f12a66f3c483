"""How the worker is started (``python -c``, worker/start.py, not ``-m``/runpy), as the user's code sees it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TASK_ROOTS, StartRuntime, clean_environment, wait_for

ENTRY = TASK_ROOTS / "entry"


@pytest.mark.parametrize("method", ["spawn", "forkserver", "fork"])
def test_a_handler_can_start_processes_with_each_multiprocessing_start_method(start_runtime: StartRuntime,
                                                                             method: str) -> None:
    """A spawned child does not run the worker's entry again (no ``__main__`` file for it to re-run)."""
    runtime = start_runtime("spawning.handler", task_root=ENTRY)
    record = runtime.invoke({"method": method})
    assert record.outcome_kind == "response", record.describe() + runtime.log()
    assert record.json()["squares"] == [1, 4, 9]
    assert runtime.invoke({"method": method}).json()["squares"] == [1, 4, 9], "and the worker serves on"


def test_the_users_code_sees_the_workers_main_as_before(start_runtime: StartRuntime) -> None:
    """sys.argv[0] is the worker package's __main__.py, as with ``-m``; __main__ is the ``-c`` module, no file."""
    runtime = start_runtime("spawning.handler", task_root=ENTRY)
    seen = runtime.invoke({"method": "fork"}).json()
    assert seen["argv0"].endswith(os.path.join("worker", "__main__.py")), seen
    assert os.path.isfile(seen["argv0"])
    assert seen["main_name"] == "__main__" and seen["main_file"] is None


@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_logging_and_traceback_are_set_up_when_the_users_init_imports_them(start_runtime: StartRuntime,
                                                                          log_format: str) -> None:
    """The worker imports neither before the user's code (worker/on_import.py), yet the init's first log record is
    already written in Lambda's layout by the runtime's handler, as under awslambdaric."""
    runtime = start_runtime("logs_at_init.handler", task_root=ENTRY, env={"AWS_LAMBDA_LOG_FORMAT": log_format})
    record = runtime.invoke({})
    assert record.outcome_kind == "response", record.describe() + runtime.log()
    seen = record.json()
    assert seen["was_imported"] == {"logging": False, "traceback": False}
    assert seen["print_exception"] == "lambda_supervisor.worker.output"
    assert seen["root_handlers"] == ["LambdaLogHandler"]
    log = runtime.log()
    assert "WARNING:root:init warning" not in log, "basicConfig ran: the root logger had no handler"
    if log_format == "Text":
        assert re.search(r"^\[WARNING\]\t\S+Z\t\tinit warning$", log, re.MULTILINE), log
        assert re.search(rf"^\[ERROR\]\t\S+Z\t{record.request_id}\thandler error 7$", log, re.MULTILINE), log
    else:
        lines = [json.loads(line) for line in log.splitlines() if line.startswith('{"timestamp"')]
        assert any({"level": "WARNING", "message": "init warning", "logger": "root"}.items() <= line.items()
                   for line in lines), lines
        assert any(line.get("requestId") == record.request_id and line["message"] == "handler error 7"
                   for line in lines), lines


def test_logging_imported_first_by_a_handler_is_set_up_then(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("logs_later.handler", task_root=ENTRY)
    record = runtime.invoke({})
    assert record.json() == {"print_exception": "lambda_supervisor.worker.output",
                             "root_handlers": ["LambdaLogHandler"]}, runtime.log()
    assert re.search(rf"^\[WARNING\]\t\S+Z\t{record.request_id}\tlate warning$", runtime.log(), re.MULTILINE)


def _gone_or_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_killed_supervisor_takes_its_busy_worker_with_it(start_runtime: StartRuntime, tmp_path: Path) -> None:
    """The worker asks for SIGKILL at its parent's death (prctl through shared/libc.py, without ctypes): one busy
    in a handler, which does not read its pipe's end of file, dies with the supervisor all the same."""
    runtime = start_runtime("spawning.handler", task_root=ENTRY)
    pid_file = tmp_path / "pid"
    runtime.emulator.submit({"sleep": 600, "pid_file": str(pid_file)})
    worker = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), what="the handler to start"))
    runtime.process.kill()
    runtime.process.wait()
    wait_for(lambda: _gone_or_zombie(worker), what=f"worker {worker} to die with the supervisor")


def test_libc_calls_work_without_ctypes() -> None:
    """shared/libc.py in a fresh interpreter: prctl's subreaper flag round-trips, setvbuf finds stdout."""
    script = """if True:
        import os, sys
        from lambda_supervisor.shared import libc, prctl
        assert libc.call("getpid") == os.getpid()
        assert not prctl.is_child_subreaper() and prctl.set_child_subreaper(True) and prctl.is_child_subreaper()
        assert prctl.is_dumpable() and prctl.set_dumpable(False) and not prctl.is_dumpable()
        assert libc.c_variable(libc.CPointer, "stdout").value
        try:
            libc.call("no_such_function_anywhere")
        except OSError:
            pass
        else:
            raise AssertionError("an unknown function must raise OSError")
        assert "ctypes" not in sys.modules
        print("ok")
    """
    result = subprocess.run([sys.executable, "-P", "-c", script], env=clean_environment(), capture_output=True,
                            text=True, timeout=60)
    assert result.stdout == "ok\n", result.stderr


def test_user_modules_named_like_standard_ones_the_worker_imports_later_do_not_replace_them(
        start_runtime: StartRuntime) -> None:
    """logging.py, traceback.py, http.py, base64.py, textwrap.py, typing.py, threading.py and signal.py in the task
    root, each raising on import: the worker, which imports those only when needed (after the task root went first
    on sys.path), still gets the standard library's, as when it imported them ahead (worker/on_import.py's pin).
    The same for simplejson and what it imports (decimal, _decimal, numbers): the first result that is not plain
    data loads them (worker/result_json.py)."""
    runtime = start_runtime("app.handler", task_root=TASK_ROOTS / "shadowing_stdlib")
    record = runtime.invoke({})
    assert record.outcome_kind == "response", record.describe() + runtime.log()
    seen = record.json()
    assert seen["response"] == 200
    assert not any(seen[name].startswith(str(TASK_ROOTS)) for name in ("logging", "traceback", "signal")), seen
    failed = runtime.invoke({"fail": True})  # error reporting: traceback, linecache, textwrap
    assert failed.error.error_type == "ValueError", failed.describe()
    assert failed.error.error is not None and failed.error.error["errorMessage"] == "as asked"
    exact = runtime.invoke({"decimal": True})
    assert exact.outcome_kind == "response", exact.describe() + runtime.log()
    assert exact.response == b'{"price": 1.10}', exact.describe()
    assert "instead of the" not in runtime.log()
    assert re.search(r"^\[WARNING\]\t\S+Z\t\tinit warning$", runtime.log(), re.MULTILINE)
