"""Bound-logger classes for the pipeline: log methods that never raise into the caller,
and the no-op logger every ``get_logger`` logger is before ``setup()``."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, Final, cast

import structlog
from structlog.typing import FilteringBoundLogger

__all__ = ["NOOP", "safe_bound_logger"]


class _NoopLogger:
    """What loggers resolve to before ``setup()`` and after ``shutdown()``: every call is
    a no-op and ``bind`` returns itself."""

    __slots__ = ()

    def _nothing(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def _anothing(self, *args: Any, **kwargs: Any) -> None:
        return None

    def bind(self, **fields: Any) -> _NoopLogger:
        return self

    new = unbind = try_unbind = bind
    debug = info = warning = warn = error = err = exception = critical = fatal = msg = _nothing
    log = _nothing
    adebug = ainfo = awarning = aerror = aexception = acritical = alog = _anothing

    def is_enabled_for(self, level: int) -> bool:
        return False


NOOP: Final = _NoopLogger()


_GUARDED: Final = (
    "debug",
    "info",
    "warning",
    "warn",
    "error",
    "err",
    "exception",
    "critical",
    "fatal",
    "msg",
    "log",
)
_failures_reported: set[type[BaseException]] = set()


def _guard(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` that never raises into the caller (a bad ``%`` format, a broken value)."""

    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            if type(exc) not in _failures_reported:
                _failures_reported.add(type(exc))
                logging.getLogger("unified_obs").warning(
                    "unified_obs: a log call failed and was dropped: %r", exc
                )
            return None

    guarded.__name__ = method.__name__
    return guarded


@functools.cache
def safe_bound_logger(level: int) -> type[FilteringBoundLogger]:
    """structlog's filtering bound logger for ``level`` whose log methods never raise."""
    base: Any = structlog.make_filtering_bound_logger(level)
    methods = {
        name: _guard(getattr(base, name))
        for name in _GUARDED
        if getattr(getattr(base, name, None), "__name__", "_nop") not in ("_nop", "_anop")
    }
    return cast("type[FilteringBoundLogger]", type(f"Safe{base.__name__}", (base,), methods))
