"""How the worker is started (``python -c``, worker/start.py, not ``-m``/runpy), as the user's code sees it."""

from __future__ import annotations

import os

import pytest

from conftest import TASK_ROOTS, StartRuntime

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
