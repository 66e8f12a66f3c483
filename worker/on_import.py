"""Set a module up the moment it is first imported, instead of importing it ahead of the user's code.

The worker configures ``logging`` and ``traceback`` as awslambdaric does (worker/output.py), but importing them costs
every cold start about 6 ms and 1.3 MB, and a trivial handler never uses them. So :func:`when_imported` puts a finder
first on ``sys.meta_path`` that, for the modules it waits for, wraps the module's loader: right after the module's
own code has run, and before the ``import`` statement that loaded it returns, the callback sets it up. The user's code
therefore never sees the module unconfigured. The module keeps its own loader in ``__loader__`` and ``__spec__``.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

    Callback = Callable[[ModuleType], None]


class _ThenSetUp:
    """The module's own loader, then the callbacks still waiting for the module (taken when it runs: a spec found
    but never loaded, as ``importlib.util.find_spec`` finds one, leaves them waiting for the real import)."""

    def __init__(self, loader: object, waiting: _Waiting) -> None:
        self._loader = loader
        self._waiting = waiting

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[attr-defined, no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self._loader  # type: ignore[assignment]
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader  # type: ignore[assignment]
        self._loader.exec_module(module)  # type: ignore[attr-defined]
        for callback in self._waiting.take(module.__name__):
            callback(module)


class _Waiting:
    """A meta path finder that finds nothing itself: for a module it waits for, it asks the finders after it."""

    def __init__(self) -> None:
        self.callbacks: dict[str, list[Callback]] = {}

    def take(self, name: str) -> list[Callback]:
        """The callbacks waiting for ``name``, no longer waiting; with none left, out of every import's way."""
        callbacks = self.callbacks.pop(name, [])
        if not self.callbacks and self in sys.meta_path:
            sys.meta_path.remove(self)
        return callbacks

    def find_spec(self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
                  ) -> ModuleSpec | None:
        if name not in self.callbacks:
            return None
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None) if finder is not self else None
            spec: ModuleSpec | None = find_spec(name, path, target) if find_spec is not None else None
            if spec is None:
                continue
            if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _ThenSetUp(spec.loader, self)  # type: ignore[assignment]
            return spec  # else no loader of the kind we can wrap: the module is imported as it is, not set up
        return None


_waiting = _Waiting()


def when_imported(name: str, callback: Callback) -> None:
    """Call ``callback(module)`` once the top-level module ``name`` is imported: now, if it already is."""
    module = sys.modules.get(name)
    if module is not None:
        callback(module)
        return
    _waiting.callbacks.setdefault(name, []).append(callback)
    if _waiting not in sys.meta_path:
        sys.meta_path.insert(0, _waiting)
