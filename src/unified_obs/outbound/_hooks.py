"""Putting a hook on a client library's public send method, and taking it off again.

A library not imported yet is hooked when it is (:func:`when_imported`), so ``setup()``
never pays for importing a client the service does not use.

A hook replaces one method on a class (``httpx.HTTPTransport.handle_request``,
``requests.adapters.HTTPAdapter.send``, ``aiohttp.ClientSession.__init__``) with a
function that calls the original; the original is kept on the hook's ``__wrapped__`` so
:func:`unpatch` restores it, and a second :func:`patch` of the same method is a no-op.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, Final

__all__ = ["cancel_pending", "contrib_instruments", "patch", "unpatch", "when_imported"]

_MARK: Final = "__unified_obs_hook__"


def patch(owner: type, name: str, make: Callable[[Any], Callable[..., Any]]) -> bool:
    """Replace ``owner.name`` with ``make(original)``; False when our hook is already there."""
    original = owner.__dict__[name]
    if getattr(original, _MARK, False):
        return False
    hook = make(original)
    hook.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(hook, _MARK, True)
    setattr(owner, name, hook)
    return True


def unpatch(owner: type, name: str) -> None:
    """Put the original of ``owner.name`` back, if our hook is the method there now."""
    current = owner.__dict__.get(name)
    if getattr(current, _MARK, False):
        setattr(owner, name, current.__wrapped__)  # type: ignore[union-attr]


def contrib_instruments(module: str, instrumentor: str) -> bool:
    """Whether OpenTelemetry contrib's ``instrumentor`` (in ``module``) is instrumenting its
    library now: then our hook steps aside rather than make a second CLIENT span.

    Only a module already imported is asked, so this costs one dictionary lookup when the
    contrib package is not in use.
    """
    loaded = sys.modules.get(module)
    if loaded is None:
        return False
    try:
        return bool(getattr(loaded, instrumentor)().is_instrumented_by_opentelemetry)
    except Exception:
        return False


class _ImportWatcher(importlib.abc.MetaPathFinder):
    """Runs a callback right after a watched top-level module has been imported."""

    def __init__(self) -> None:
        self.pending: dict[str, Callable[[], None]] = {}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        callback = self.pending.get(fullname)
        if callback is None:
            return None
        spec = _spec_from_others(self, fullname, path, target)
        loader = getattr(spec, "loader", None)
        if spec is None or loader is None or not hasattr(loader, "exec_module"):
            return spec
        run_module = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run_module(module)
            if self.pending.get(fullname) is callback:  # not cancelled meanwhile; run once
                del self.pending[fullname]
                callback()

        loader.exec_module = exec_module
        return spec


def _spec_from_others(
    watcher: _ImportWatcher, name: str, path: Sequence[str] | None, target: ModuleType | None
) -> importlib.machinery.ModuleSpec | None:
    for finder in sys.meta_path:
        if finder is watcher or not hasattr(finder, "find_spec"):
            continue
        spec: importlib.machinery.ModuleSpec | None = finder.find_spec(name, path, target)
        if spec is not None:
            return spec
    return None


_watcher: Final = _ImportWatcher()


def when_imported(module: str, callback: Callable[[], None]) -> None:
    """Run ``callback`` now if ``module`` is imported already, else right after its import."""
    if module in sys.modules:
        callback()
        return
    _watcher.pending[module] = callback
    if _watcher not in sys.meta_path:
        sys.meta_path.insert(0, _watcher)


def cancel_pending() -> None:
    """Forget the callbacks of modules not imported yet."""
    _watcher.pending.clear()
