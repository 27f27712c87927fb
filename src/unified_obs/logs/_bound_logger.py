"""Bound-logger classes for the pipeline: log methods that never raise into the caller,
the direct level methods of ``get_logger`` loggers, and the no-op logger every
``get_logger`` logger is before ``setup()``."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final, cast

import structlog
from structlog.typing import FilteringBoundLogger

__all__ = ["NOOP", "direct_methods", "safe_bound_logger"]


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


def _report(exc: Exception) -> None:
    """Warn once per exception type that a log call failed and was dropped."""
    if type(exc) not in _failures_reported:
        _failures_reported.add(type(exc))
        logging.getLogger("unified_obs").warning(
            "unified_obs: a log call failed and was dropped: %r", exc
        )


def _guard(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` that never raises into the caller (a bad ``%`` format, a broken value)."""

    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            _report(exc)
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


# method -> (name the processors and the sink see, level)
_DIRECT: Final = {
    "debug": ("debug", logging.DEBUG),
    "info": ("info", logging.INFO),
    "msg": ("info", logging.INFO),
    "warning": ("warning", logging.WARNING),
    "warn": ("warning", logging.WARNING),
    "error": ("error", logging.ERROR),
    "err": ("error", logging.ERROR),
    "exception": ("error", logging.ERROR),
    "critical": ("critical", logging.CRITICAL),
    "fatal": ("critical", logging.CRITICAL),
}


def direct_methods(
    sink: Any, processors: list[Any], context: dict[str, Any], level: int
) -> dict[str, Callable[..., None]]:
    """The sync level methods of a logger bound to ``context``, doing what structlog's
    filtering bound logger does -- ``%`` interpolation, the live processor chain, the
    sink method of the level, ``DropEvent`` -- and never raising into the caller.  Unlike
    structlog's, they have ``err``, and write a ``method_name=`` field instead of
    dropping the line.  Levels below ``level`` get a no-op."""
    methods: dict[str, Callable[..., None]] = {}
    for name, (method, method_level) in _DIRECT.items():
        if method_level < level:
            methods[name] = _nothing
        else:
            methods[name] = _direct(method, sink, processors, context, name == "exception")
    return methods


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


def _direct(
    method: str, sink: Any, processors: list[Any], context: dict[str, Any], exc_info: bool
) -> Callable[..., None]:
    write = getattr(sink, method)

    def log(*args: Any, **kw: Any) -> None:
        try:
            event = args[0] if len(args) == 1 and "event" not in kw else _event(args, kw)
            if exc_info:
                kw.setdefault("exc_info", True)
            event_dict: Any = {**context, **kw}
            if event is not None:
                event_dict["event"] = event
            for processor in processors:
                event_dict = processor(sink, method, event_dict)
            if type(event_dict) is bytes or type(event_dict) is str:
                write(event_dict)
            else:
                _write(write, event_dict)
        except structlog.DropEvent:
            return
        except Exception as exc:
            _report(exc)

    log.__name__ = method
    return log


def _event(args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
    """The event of a call other than ``log.info("event", **fields)``, as structlog
    takes it: interpolated with the other positional arguments, or the ``event=`` keyword;
    ``TypeError`` when it is missing or given twice."""
    if args:
        if "event" in kw:
            raise TypeError("the event was given twice")
        return _interpolate(args[0], args[1:])
    if "event" in kw:
        return kw.pop("event")
    raise TypeError("a log call needs an event")


def _interpolate(event: Any, args: tuple[Any, ...]) -> Any:
    if not args:
        return event
    if len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
        return event % args[0]
    return event % args


def _write(write: Callable[..., Any], rendered: Any) -> None:
    """Hand what the last processor returned to the sink, as structlog does."""
    if isinstance(rendered, (str, bytes, bytearray)):
        write(rendered)
    elif isinstance(rendered, tuple):
        write(*rendered[0], **rendered[1])
    elif isinstance(rendered, dict):
        write(**rendered)
    else:
        raise ValueError("the last log processor returned neither text nor a dict")
