"""The exceptions unified_obs raises, and the import of an optional extra that names its
``pip install`` line when missing.

The tree is deliberately shallow::

    UnifiedObsError
    └── ConfigError (also a ValueError)

``ConfigError`` is raised only while configuring (``setup()``, instrument or
check definitions).  On the request path the library never raises into the
application.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["ConfigError", "UnifiedObsError"]


class UnifiedObsError(Exception):
    """Base class of every exception raised by unified_obs."""


class ConfigError(UnifiedObsError, ValueError):
    """A configuration value given in code is invalid.

    The message names the field, the offending value (secrets masked) and what
    is accepted, e.g. ``traces_exporter='zipkin' is not accepted; expected one
    of: otlp, console, none``.
    """

    def __init__(self, field: str, value: object, accepted: str, *, secret: bool = False) -> None:
        shown = "'***'" if secret else _short_repr(value)
        super().__init__(f"{field}={shown} is not accepted; expected {accepted}")
        self.field = field
        self.accepted = accepted


def _short_repr(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, never raising."""
    try:
        text = repr(value)
    except Exception:  # a user object whose __repr__ raises
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def require_extra(module: str, extra: str) -> ModuleType:
    """Import ``module`` of an optional extra, or raise ``ImportError`` with the exact
    ``pip install 'unified-obs[extra]'`` line."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module} is not installed; install it with: pip install 'unified-obs[{extra}]'"
        ) from exc
