"""Standard modules the worker imports only when needed, still found where they were before the task root went first,
and set up the moment they are first imported.

The worker configures ``logging`` and ``traceback`` as awslambdaric does (worker/output.py), but importing them costs
every cold start about 6 ms and 1.3 MB, and a trivial handler never uses them; nor do most use ``http`` or ``base64``
(worker/http.py). Imported later, though, they would be looked up after the task root was put first on ``sys.path``,
where a user's ``logging.py`` or ``http.py`` would win. So :func:`pin` finds each one's spec now, before any user
code, and a finder first on ``sys.meta_path`` hands out that spec when the module is imported (as a module imported
ahead would have been found); :func:`when_imported` adds a callback that sets the module up right after its own code
has run, before the ``import`` statement that loaded it returns, so the user's code never sees it unconfigured. The
module keeps its own loader in ``__loader__`` and ``__spec__``.
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
    """The module's own loader, then the callbacks waiting for the module (taken when it runs: a spec found but
    never loaded, as ``importlib.util.find_spec`` finds one, leaves them and the pin for the real import)."""

    def __init__(self, loader: object, pinned: _Pinned) -> None:
        self._loader = loader
        self._pinned = pinned

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[attr-defined, no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self._loader  # type: ignore[assignment]
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader  # type: ignore[assignment]
        self._loader.exec_module(module)  # type: ignore[attr-defined]
        for callback in self._pinned.take(module.__name__):
            callback(module)


class _Pinned:
    """A meta path finder that finds only the modules pinned, each where it was found when it was pinned."""

    def __init__(self) -> None:
        self.specs: dict[str, ModuleSpec] = {}
        self.callbacks: dict[str, list[Callback]] = {}

    def pin(self, name: str) -> None:
        if name in sys.modules or name in self.specs:
            return
        spec = self._find_elsewhere(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return  # not a module we can hand out (nor set up): it is found as any other
        spec.loader = _ThenSetUp(spec.loader, self)  # type: ignore[assignment]
        self.specs[name] = spec  # a built-in one for its callbacks only: nothing on sys.path can shadow it
        self._first()

    def _first(self) -> None:
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def take(self, name: str) -> list[Callback]:
        """The callbacks waiting for ``name``, which is no longer pinned; with none left, out of every import's
        way."""
        self.specs.pop(name, None)
        if not self.specs and self in sys.meta_path:
            sys.meta_path.remove(self)
        return self.callbacks.pop(name, [])

    def find_spec(self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
                  ) -> ModuleSpec | None:
        return self.specs.get(name)

    def _find_elsewhere(self, name: str) -> ModuleSpec | None:
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None) if finder is not self else None
            spec: ModuleSpec | None = find_spec(name, None) if find_spec is not None else None
            if spec is not None:
                return spec
        return None


_pinned = _Pinned()


def pin(*names: str) -> None:
    """Import each of these top-level modules, when something does, from where it is found now (before the task
    root is put first on ``sys.path``)."""
    for name in names:
        _pinned.pin(name)


def when_imported(name: str, callback: Callback) -> None:
    """Pin the top-level module ``name`` and call ``callback(module)`` once it is imported: now, if it already is."""
    module = sys.modules.get(name)
    if module is not None:
        callback(module)
        return
    _pinned.pin(name)
    if name in _pinned.specs:
        _pinned.callbacks.setdefault(name, []).append(callback)
