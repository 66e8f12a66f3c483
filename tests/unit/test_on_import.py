"""worker/on_import.py: a callback runs when its module is first imported, before the import statement returns.

Each case runs in a fresh interpreter: the modules it waits for must not be imported yet."""

from __future__ import annotations

import subprocess
import sys

from conftest import clean_environment


def run(script: str) -> str:
    result = subprocess.run([sys.executable, "-P", "-c", script], env=clean_environment(), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_callback_runs_before_the_import_returns_and_the_module_keeps_its_loader() -> None:
    out = run("""if True:
        import sys
        from lambda_supervisor.worker.on_import import when_imported
        assert "colorsys" not in sys.modules
        when_imported("colorsys", lambda module: setattr(module, "SET_UP", True))
        import colorsys
        print(colorsys.SET_UP, type(colorsys.__loader__).__name__, type(colorsys.__spec__.loader).__name__)
        print([type(finder).__name__ for finder in sys.meta_path if type(finder).__name__ == "_Pinned"])
    """)
    assert out == "True SourceFileLoader SourceFileLoader\n[]\n"


def test_an_imported_module_is_set_up_at_once_and_a_find_spec_alone_does_not_use_up_the_wait() -> None:
    out = run("""if True:
        import importlib.util, sys
        from lambda_supervisor.worker.on_import import when_imported
        when_imported("os", lambda module: print("at once", module.__name__))
        when_imported("colorsys", lambda module: print("set up", module.__name__))
        assert importlib.util.find_spec("colorsys") is not None and "colorsys" not in sys.modules
        print("found")
        import colorsys
    """)
    assert out == "at once os\nfound\nset up colorsys\n"


def test_a_submodule_import_sets_the_package_up_first() -> None:
    out = run("""if True:
        from lambda_supervisor.worker.on_import import when_imported
        when_imported("logging", lambda module: print("set up", hasattr(module, "getLogger")))
        import logging.handlers
        print("imported")
    """)
    assert out == "set up True\nimported\n"
