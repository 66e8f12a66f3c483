"""Resolve ``_HANDLER`` into a callable, classifying every way that can fail as Lambda does.

Accepted forms are awslambdaric's: ``module.function``, ``package.module.function`` and ``dir/module.function``
(slashes become dots). Failures become an :class:`InitFailure` carrying a Lambda error object, which the worker sends
to the supervisor for ``/runtime/init/error``.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable

from lambda_supervisor.shared.errors import ErrorType, error_object, exception_error_object

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Handler = Callable[[Any, Any], Any]
#: Frames of this loader and of importlib's machinery are noise in a user's init error.
_HIDDEN_FRAMES = (os.path.realpath(__file__), os.path.realpath(importlib.__file__), "<frozen importlib")


class InitFailure(Exception):
    """User init failed; ``error`` is the Lambda error object to report."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error["errorMessage"])
        self.error = error


def split_handler_name(handler: str) -> tuple[str, str]:
    """``"pkg/mod.fn"`` -> ``("pkg.mod", "fn")``; raise InitFailure for a name that cannot name a function."""
    module_path, _, function_name = handler.strip().rpartition(".")
    module_name = module_path.replace("/", ".")
    names = [*module_name.split("."), function_name]
    if not module_path or not all(name.isidentifier() for name in names):
        raise InitFailure(
            error_object(
                ErrorType.MALFORMED_HANDLER_NAME,
                f"Bad handler '{handler}': expected 'module.function' or 'dir/module.function' "
                "made of Python identifiers",
            )
        )
    return module_name, function_name


def put_task_root_first(task_root: str | os.PathLike[str]) -> None:
    """Make the user's modules win over anything else on ``sys.path``, as in Lambda's own Python runtime."""
    root = os.path.normpath(task_root)
    while root in sys.path:
        sys.path.remove(root)
    sys.path.insert(0, root)


def load_handler(handler: str) -> Handler:
    """Import the handler's module (running the user's init code) and return the handler function."""
    module_name, function_name = split_handler_name(handler)
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as error:
        described = exception_error_object(
            error, ErrorType.USER_CODE_SYNTAX, f"Syntax error in module '{module_name}': {error}",
            hide_prefixes=_HIDDEN_FRAMES,
        )
        # the offending line, in awslambdaric's form, when no frame of the user's own led to it
        described["stackTrace"] = described["stackTrace"] or [f'  File "{error.filename}" Line {error.lineno}\n'
                                                              f"    {error.text}"]
        raise InitFailure(described) from None
    except ImportError as error:
        raise InitFailure(
            exception_error_object(
                error, ErrorType.IMPORT_MODULE, f"Unable to import module '{module_name}': {error}",
                hide_prefixes=_HIDDEN_FRAMES,
            )
        ) from None
    except Exception as error:  # any other failure of the user's init code, reported under its own name
        raise InitFailure(exception_error_object(error, hide_prefixes=_HIDDEN_FRAMES)) from None
    function = getattr(module, function_name, None)
    if function is None:
        raise InitFailure(
            error_object(ErrorType.HANDLER_NOT_FOUND, f"Handler '{function_name}' missing on module '{module_name}'")
        )
    if not callable(function):
        raise InitFailure(
            error_object(
                ErrorType.HANDLER_NOT_FOUND,
                f"Handler '{function_name}' on module '{module_name}' is not callable "
                f"(it is a {type(function).__name__})",
            )
        )
    return function  # type: ignore[no-any-return]
