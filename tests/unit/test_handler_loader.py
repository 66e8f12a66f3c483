"""load_handler against real modules written into a temporary task root, one per way init can go wrong."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_supervisor.shared.errors import ErrorType
from lambda_supervisor.worker import handler_loader
from lambda_supervisor.worker.handler_loader import InitFailure, load_handler, put_task_root_first, split_handler_name


@pytest.fixture
def task_root(tmp_path: Path) -> Iterator[Path]:
    """A task root first on sys.path; afterwards sys.path and sys.modules are as they were."""
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)
    root = tmp_path / "task"
    root.mkdir()
    put_task_root_first(root)
    yield root
    sys.path[:] = saved_path
    ours = [name for name in set(sys.modules) - saved_modules if _loaded_from(sys.modules[name], tmp_path)]
    for name in ours:
        del sys.modules[name]
    importlib.invalidate_caches()


def _loaded_from(module: object, root: Path) -> bool:
    spec = getattr(module, "__spec__", None)
    places = [getattr(spec, "origin", None) or "", *(getattr(spec, "submodule_search_locations", None) or [])]
    return any(str(place).startswith(str(root)) for place in places)


def write(root: Path, relative: str, source: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    importlib.invalidate_caches()
    return path


def init_error(handler: str) -> dict[str, object]:
    with pytest.raises(InitFailure) as excinfo:
        load_handler(handler)
    error = excinfo.value.error
    assert set(error) == {"errorType", "errorMessage", "stackTrace"}
    assert isinstance(error["errorMessage"], str)
    assert isinstance(error["stackTrace"], list)
    assert all(isinstance(line, str) for line in error["stackTrace"])
    assert str(excinfo.value) == error["errorMessage"]
    return error


HANDLER_SOURCE = """
    def handler(event, context):
        return {"from": __name__, "event": event}
"""


# -- forms that work -------------------------------------------------------------------------------------------


def test_module_function(task_root: Path) -> None:
    write(task_root, "app_mf.py", HANDLER_SOURCE)
    handler = load_handler("app_mf.handler")
    assert handler({"k": 1}, None) == {"from": "app_mf", "event": {"k": 1}}
    assert handler is sys.modules["app_mf"].handler


def test_package_module_function(task_root: Path) -> None:
    write(task_root, "pkg_pmf/__init__.py", "")
    write(task_root, "pkg_pmf/sub/__init__.py", "")
    write(task_root, "pkg_pmf/sub/mod.py", HANDLER_SOURCE)
    assert load_handler("pkg_pmf.sub.mod.handler")(1, None) == {"from": "pkg_pmf.sub.mod", "event": 1}


def test_dir_module_function(task_root: Path) -> None:
    write(task_root, "src_dmf/handlers/api.py", HANDLER_SOURCE)  # plain directories, no __init__.py
    assert load_handler("src_dmf/handlers/api.handler")(2, None) == {"from": "src_dmf.handlers.api", "event": 2}


def test_surrounding_whitespace_is_ignored(task_root: Path) -> None:
    write(task_root, "app_ws.py", HANDLER_SOURCE)
    assert load_handler("  app_ws.handler\n")(3, None)["event"] == 3


def test_any_callable_is_a_handler(task_root: Path) -> None:
    write(task_root, "app_callable.py", """
        class Handler:
            def __call__(self, event, context):
                return "called"
        handler = Handler()
    """)
    assert load_handler("app_callable.handler")(None, None) == "called"


def test_the_task_root_shadows_other_path_entries(task_root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere, "shadow_me.py", "def handler(e, c):\n    return 'elsewhere'\n")
    sys.path.insert(0, str(elsewhere))
    write(task_root, "shadow_me.py", "def handler(e, c):\n    return 'task root'\n")
    put_task_root_first(task_root)
    put_task_root_first(task_root)
    assert sys.path[0] == str(task_root)
    assert sys.path.count(str(task_root)) == 1
    assert load_handler("shadow_me.handler")(None, None) == "task root"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("app.handler", ("app", "handler")),
        ("pkg.sub.mod.fn", ("pkg.sub.mod", "fn")),
        ("dir/mod.fn", ("dir.mod", "fn")),
        ("a/b/c.d", ("a.b.c", "d")),
        (" app.handler ", ("app", "handler")),
        ("módulo.función", ("módulo", "función")),
        ("_private._fn", ("_private", "_fn")),
    ],
)
def test_split_handler_name(name: str, expected: tuple[str, str]) -> None:
    assert split_handler_name(name) == expected


# -- failures --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["handler", "", "   ", ".handler", "app.", "app..handler", "1app.handler", "app.1handler", "my-app.handler",
     "app.han dler", "dir//mod.fn", "/abs/mod.fn", "dir/.fn", "app.handler()", "app.handler.", "app:handler",
     "app\x00.handler", "..", "/.fn"],
)
def test_a_malformed_name(task_root: Path, name: str) -> None:
    error = init_error(name)
    assert error["errorType"] == ErrorType.MALFORMED_HANDLER_NAME == "Runtime.MalformedHandlerName"
    assert repr(name)[1:-1] in str(error["errorMessage"]) or name in str(error["errorMessage"])
    with pytest.raises(InitFailure):
        split_handler_name(name)


def test_a_missing_module(task_root: Path) -> None:
    error = init_error("no_such_module_xyz.handler")
    assert error["errorType"] == ErrorType.IMPORT_MODULE == "Runtime.ImportModuleError"
    assert "Unable to import module 'no_such_module_xyz'" in str(error["errorMessage"])


def test_a_missing_dependency_of_the_module(task_root: Path) -> None:
    write(task_root, "app_dep.py", "import a_dependency_nobody_installed  # noqa\n" + textwrap.dedent(HANDLER_SOURCE))
    error = init_error("app_dep.handler")
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert "a_dependency_nobody_installed" in str(error["errorMessage"])
    # the user's import line is in the stack, the loader and importlib are not
    assert any("app_dep.py" in line for line in error["stackTrace"])
    assert not any(handler_loader.__file__ in line for line in error["stackTrace"])


def test_a_missing_module_inside_a_dir(task_root: Path) -> None:
    (task_root / "dir_only").mkdir()
    error = init_error("dir_only/missing.handler")
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert "dir_only.missing" in str(error["errorMessage"])


def test_a_syntax_error(task_root: Path) -> None:
    write(task_root, "app_syntax.py", "def handler(event, context)\n    return 1\n")
    error = init_error("app_syntax.handler")
    assert error["errorType"] == ErrorType.USER_CODE_SYNTAX == "Runtime.UserCodeSyntaxError"
    assert "Syntax error in module 'app_syntax'" in str(error["errorMessage"])
    assert "app_syntax.py" in str(error["errorMessage"]) or "line 1" in str(error["errorMessage"])


def test_an_indentation_error_is_a_syntax_error(task_root: Path) -> None:
    write(task_root, "app_indent.py", "def handler(event, context):\nreturn 1\n")
    assert init_error("app_indent.handler")["errorType"] == "Runtime.UserCodeSyntaxError"


def test_an_exception_at_import_is_reported_under_its_class_name(task_root: Path) -> None:
    path = write(task_root, "app_raises.py", """
        class SettingsMissing(Exception):
            pass

        def load_settings():
            raise SettingsMissing("DATABASE_URL is not set")

        SETTINGS = load_settings()

        def handler(event, context):
            return SETTINGS
    """)
    error = init_error("app_raises.handler")
    assert error["errorType"] == "SettingsMissing"
    assert error["errorMessage"] == "DATABASE_URL is not set"
    stack = error["stackTrace"]
    assert len(stack) == 2  # the module's top level, then load_settings
    assert str(path) in stack[0]
    assert "load_settings" in stack[1]
    assert not any("importlib" in line or handler_loader.__file__ in line for line in stack)


def test_a_builtin_exception_at_import(task_root: Path) -> None:
    write(task_root, "app_zero.py", "RATIO = 1 / 0\n")
    error = init_error("app_zero.handler")
    assert error["errorType"] == "ZeroDivisionError"
    assert error["errorMessage"] == "division by zero"
    assert error["stackTrace"] and "app_zero.py" in error["stackTrace"][0]


def test_an_unprintable_exception_at_import(task_root: Path) -> None:
    write(task_root, "app_unprintable.py", """
        class Unprintable(Exception):
            def __str__(self):
                raise RuntimeError("no string for you")

        raise Unprintable()
    """)
    error = init_error("app_unprintable.handler")
    assert error["errorType"] == "Unprintable"
    assert "Unprintable" in str(error["errorMessage"])


def test_a_missing_handler_attribute(task_root: Path) -> None:
    write(task_root, "app_noattr.py", HANDLER_SOURCE)
    error = init_error("app_noattr.lambda_handler")
    assert error["errorType"] == ErrorType.HANDLER_NOT_FOUND == "Runtime.HandlerNotFound"
    assert "lambda_handler" in str(error["errorMessage"])
    assert "app_noattr" in str(error["errorMessage"])


def test_a_non_callable_handler_attribute(task_root: Path) -> None:
    write(task_root, "app_notcallable.py", "handler = {'not': 'a function'}\n")
    error = init_error("app_notcallable.handler")
    assert error["errorType"] == "Runtime.HandlerNotFound"
    assert "not callable" in str(error["errorMessage"])
    assert "dict" in str(error["errorMessage"])


def test_a_handler_that_is_none(task_root: Path) -> None:
    write(task_root, "app_none.py", "handler = None\n")
    assert init_error("app_none.handler")["errorType"] == "Runtime.HandlerNotFound"


def test_a_failed_import_can_be_retried_after_the_fix(task_root: Path) -> None:
    write(task_root, "app_retry.py", "raise ValueError('first attempt')\n")
    assert init_error("app_retry.handler")["errorType"] == "ValueError"
    write(task_root, "app_retry.py", HANDLER_SOURCE)
    assert load_handler("app_retry.handler")(4, None)["event"] == 4


# -- any name ----------------------------------------------------------------------------------------------------

_identifier = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,8}\Z")
_names = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="ab_1./ -\n\t\x00é", max_size=20),
    st.builds(lambda parts, sep, fn: sep.join(parts) + "." + fn,
              st.lists(_identifier, min_size=1, max_size=4), st.sampled_from([".", "/"]), _identifier),
)


@settings(max_examples=300, deadline=None)
@given(name=_names)
def test_any_text_is_a_pair_of_identifiers_or_a_malformed_name(name: str) -> None:
    try:
        module, function = split_handler_name(name)
    except InitFailure as failure:  # anything else propagates and fails the test
        assert failure.error["errorType"] == "Runtime.MalformedHandlerName"
        assert isinstance(failure.error["errorMessage"], str)
        return
    assert function.isidentifier()
    assert module and all(part.isidentifier() for part in module.split("."))
    assert "/" not in module
    assert name.strip().replace("/", ".") == f"{module}.{function}"
