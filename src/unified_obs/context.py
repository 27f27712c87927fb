"""Request-scoped fields and the trace identity of the current span.

Bound fields live in one ``ContextVar`` holding a dict that is never changed once set
(each ``bind`` sets a new one), so every asyncio task and every thread sees only its
own fields and reading them costs one lookup.  Trace and span ids are never copied
here: they are read from the OpenTelemetry context when a record is built.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, Final, ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace

from ._compat.opentelemetry import current_context_getter, runtime_context_var, span_key

__all__ = [
    "bind",
    "bound",
    "bound_fields",
    "clear",
    "current_trace_ids",
    "reset",
    "run_in_context",
    "unbind",
    "wrap_context",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")
_EMPTY: Final[dict[str, Any]] = {}
# A plain dict, not a read-only proxy: merging a dict into a log line takes CPython's
# fast path (twice as fast).  Nothing mutates a dict once it is set here.
_FIELDS: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "unified_obs_fields", default=_EMPTY
)
get_fields: Final = _FIELDS.get
"""The bound fields of the current context, for the log pipeline only: the dict must
not be changed (the public, read-only form is ``bound_fields``)."""
set_fields: Final = _FIELDS.set
"""Make ``fields`` (a dict a ``bind`` made earlier, never changed) the bound fields again;
returns a reset token.  For the middleware only."""


_VAR: Final[contextvars.ContextVar[Any] | None] = runtime_context_var()
current_otel_context: Final[Callable[[], Any]] = current_context_getter()
"""The current OpenTelemetry context (hot-path form of ``context.get_current``)."""
attach_otel_context: Final[Callable[[Any], Any]] = (
    _VAR.set if _VAR is not None else otel_context.attach
)
detach_otel_context: Final[Callable[[Any], None]] = (
    _VAR.reset if _VAR is not None else otel_context.detach
)
"""``opentelemetry.context.attach`` / ``detach`` without their layers of calls, for a
token detached in the same task or thread that attached it."""


SPAN_KEY: Final = span_key()
"""Where the current span lives in an OpenTelemetry context."""


def with_span(span: trace.Span, parent: otel_context.Context | None) -> otel_context.Context:
    """``parent`` (else the current context) with ``span`` as its span: what
    ``trace.set_span_in_context`` makes, in one step."""
    base = parent if parent is not None else current_otel_context()
    return otel_context.Context({**base, SPAN_KEY: span})


def bound_fields() -> Mapping[str, Any]:
    """The fields bound in the current context, as a read-only mapping."""
    return MappingProxyType(_FIELDS.get())


def bind(**fields: Any) -> contextvars.Token[dict[str, Any]]:
    """Add ``fields`` to every log line of the current context; returns a reset token."""
    return bind_shared(fields)  # the keyword dict is new and ours alone


def bind_shared(fields: dict[str, Any]) -> contextvars.Token[dict[str, Any]]:
    """``bind(**fields)`` for a dict its caller never changes afterwards (a fresh one, or
    a per-method constant): when nothing is bound yet, that dict is used as it is."""
    current = _FIELDS.get()
    return _FIELDS.set({**current, **fields} if current else fields)


def unbind(*names: str) -> None:
    """Remove ``names`` from the current context (missing names are ignored)."""
    fields = _FIELDS.get()
    if any(name in fields for name in names):
        _FIELDS.set({k: v for k, v in fields.items() if k not in names})


def reset(token: contextvars.Token[dict[str, Any]]) -> None:
    """Restore the fields as they were before the ``bind`` that returned ``token``."""
    _FIELDS.reset(token)


def clear() -> None:
    """Remove every bound field from the current context."""
    _FIELDS.set(_EMPTY)


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Bind ``fields`` for the duration of a ``with`` block, then restore the previous ones."""
    token = bind(**fields)
    try:
        yield
    finally:
        _FIELDS.reset(token)


def current_trace_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` in lowercase hex for the current span, or ``None``."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


def wrap_context(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Wrap ``fn`` so it runs in a copy of the caller's context (span and bound fields).

    Use it to hand work to threads or executors::

        loop.run_in_executor(None, obs.wrap_context(blocking_call))
        pool.submit(obs.wrap_context(job), arg)
    """
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return ctx.copy().run(fn, *args, **kwargs)

    return run


def run_in_context(
    fn: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs
) -> Callable[[], _R]:
    """A zero-argument callable that runs ``fn(*args, **kwargs)`` in the caller's context."""
    wrapped = wrap_context(fn)
    return lambda: wrapped(*args, **kwargs)
