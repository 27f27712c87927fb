"""What one decorated function (a *call site*) knows and does per call.

Everything that can be computed once is computed when the function is decorated:
the span name, the ``code.*`` attributes, the metric label values, the logger.
Per call a site does the least it can: when ``_call_tracing`` says no span is
needed, it times the call and records metrics, nothing else; otherwise it starts a span
with ``tracer.start_span`` and the wrappers make it current with ``context.attach`` and
``detach`` (cheaper than ``start_as_current_span``, which stacks two generator context
managers).

Telemetry never raises into the application: failures here are swallowed.
"""

from __future__ import annotations

import contextlib
import inspect
import time
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from .._semconv import exception_attributes
from ..logs import get_logger
from . import _arguments, _call_metrics
from ._call_tracing import Tracing, global_tracing

__all__ = [
    "CallSite",
    "block_site",
    "code_attributes",
    "error_type",
    "failure_of",
    "module_of",
    "name_of",
]

_LOGGED_MARK: Final = "__unified_obs_logged__"
_HTTP_EXCEPTION_BASES: Final = frozenset({"HTTPException", "APIException"})
"""Base classes, by name, of the exceptions that web frameworks answer as HTTP responses:
starlette's and FastAPI's ``HTTPException`` (``status_code``), werkzeug's and aiohttp's
(``code``, ``status_code``), Django REST framework's ``APIException`` (``status_code``).
Matching the name, not an attribute alone, keeps an HTTP *client's* error (``httpx``,
``requests``, SDK errors with a ``status_code`` of their dependency) a failure."""
_DJANGO_STATUS: Final = {
    "Http404": 404,
    "PermissionDenied": 403,
    "SuspiciousOperation": 400,
    "BadRequest": 400,
}
"""Django's exceptions that its handler answers with a 4xx response (they carry no code)."""


def client_error_status(exc: BaseException) -> int | None:
    """The 4xx status when ``exc`` is an HTTP exception a web framework answers as a client
    error (404, 403, 422...): control flow, not a failure; ``None`` otherwise (5xx too).
    Duck-typed: no framework is imported."""
    try:
        status: object = None
        for cls in type(exc).__mro__:
            name = cls.__name__
            if name in _HTTP_EXCEPTION_BASES:
                status = getattr(exc, "status_code", None)
                status = getattr(exc, "code", None) if status is None else status
                break
            if name in _DJANGO_STATUS and cls.__module__.startswith("django."):
                status = _DJANGO_STATUS[name]
                break
        if isinstance(status, int) and not isinstance(status, bool) and 400 <= status < 500:
            return status
    except Exception:  # an exception class with hostile attributes: a plain error
        pass
    return None


def failure_of(exc: BaseException) -> tuple[str, str, int | None]:
    """``(outcome, error_type, status)`` of a call that raised ``exc``, the class hierarchy
    walked once (:func:`client_error_status`).

    ``outcome``: ``error`` for exceptions, ``client_error`` for an HTTP exception with a
    4xx status, ``ok`` for a generator being closed, ``cancelled`` for cancellation and
    interruption (``CancelledError``, ``KeyboardInterrupt``, ``SystemExit``);
    ``error_type``: :func:`error_type` for ``error`` and ``client_error``, else ``""``;
    ``status``: the 4xx status of a ``client_error``, else ``None``."""
    if isinstance(exc, Exception):
        status = client_error_status(exc)
        return "error" if status is None else "client_error", error_type(exc), status
    if isinstance(exc, GeneratorExit):
        return "ok", "", None
    return "cancelled", "", None


def error_type(exc: BaseException) -> str:
    """The ``error.type`` of ``exc``: its class's qualified name (module-less for builtins)."""
    cls = type(exc)
    module = cls.__module__
    return (
        cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"
    )


def module_of(fn: Callable[..., Any]) -> str:
    """The ``__module__`` of the function under any decorators (``""`` if unknown)."""
    return str(getattr(inspect.unwrap(fn), "__module__", None) or "")


def name_of(fn: Callable[..., Any]) -> str:
    """The qualified name of the function under any decorators (of its class for a
    callable object: never an address)."""
    target = inspect.unwrap(fn)
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    return str(name or type(target).__qualname__)


def code_attributes(fn: Callable[..., Any]) -> dict[str, AttributeValue]:
    """``code.function.name``, ``code.file.path`` and ``code.line.number`` of ``fn``."""
    module, qualname = module_of(fn), name_of(fn)
    attributes: dict[str, AttributeValue] = {
        "code.function.name": f"{module}.{qualname}" if module else qualname
    }
    code = getattr(inspect.unwrap(fn), "__code__", None)
    if isinstance(code, types.CodeType):
        attributes["code.file.path"] = code.co_filename
        attributes["code.line.number"] = code.co_firstlineno
    return attributes


class CallSite:
    """One decorated function: its precomputed span data, metrics and error policy."""

    __slots__ = (
        "arguments",
        "attributes",
        "kind",
        "log_errors",
        "logger",
        "metrics",
        "name",
        "record_ok",
        "tracing",
    )

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None,
        attributes: Mapping[str, AttributeValue] | None,
        record_args: Sequence[str],
        kind: SpanKind,
        metrics: _call_metrics.CallMetrics | None,
        log_errors: bool,
        tracing: Tracing | None,
    ) -> None:
        self.name: Final = name or name_of(fn)
        self.attributes: Final = {**code_attributes(fn), **(attributes or {})}
        self.arguments: Final = _arguments.ArgumentRecorder.for_function(fn, record_args)
        self.kind: Final = kind
        self.metrics: Final = metrics
        self.record_ok: Final = _nothing if metrics is None else metrics.ok
        """Record the metrics of a successful call that made no span (never raises)."""
        self.log_errors: Final = log_errors
        self.logger: Final = get_logger(module_of(fn) or "unified_obs.decorators")
        self.tracing: Final = global_tracing if tracing is None else tracing

    def begin(
        self,
        parent_context: otel_context.Context,
        wrapped: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[Span, otel_context.Context] | None:
        """A span for this call (not yet current) and the context that makes it current;
        ``None`` if the span could not be made.  ``parent_context`` comes from
        ``self.tracing.parent_context()``, which the wrappers call first."""
        try:
            attributes = self.attributes
            if self.arguments is not None:
                attributes = {**attributes, **self.arguments.values(wrapped, args, kwargs)}
            span = self.tracing.tracer.start_span(self.name, parent_context, self.kind, attributes)
            return span, trace.set_span_in_context(span, parent_context)
        except Exception:  # telemetry must never break the call
            return None

    def begin_block(
        self, name: str, attributes: Mapping[str, AttributeValue]
    ) -> tuple[Span, otel_context.Context] | None:
        """A span for an ad-hoc block, with its own name and attributes (see :meth:`begin`)."""
        parent_context = self.tracing.parent_context()
        if parent_context is None:
            return None
        try:
            span = self.tracing.tracer.start_span(name, parent_context, self.kind, attributes)
            return span, trace.set_span_in_context(span, parent_context)
        except Exception:
            return None

    def end_ok(self, start: float, span: Span | None) -> None:
        """Record a successful call (metrics while the span is still current, then end it)."""
        self.record_ok(time.perf_counter() - start)
        if span is not None:
            _end(span)

    def end_error(self, start: float, span: Span | None, exc: BaseException) -> None:
        """Record a call that raised ``exc``: span status, one error log, metrics; each part
        guarded on its own, so the span always ends.  An HTTP exception with a 4xx status
        (``client_error``) leaves the span's status unset and logs at debug level only."""
        elapsed = time.perf_counter() - start
        outcome, kind, status = failure_of(exc)
        if span is not None:
            _mark_span(span, exc, outcome, kind, status)
        if outcome == "error" and self.log_errors:
            self._log_once(exc, kind)
        elif outcome == "client_error" and self.log_errors:
            self._log_client_error(kind, status)
        if self.metrics is not None:
            self.metrics.failed(elapsed, outcome, kind)
        if span is not None:
            _end(span)

    def _log_client_error(self, kind: str, status: int | None) -> None:
        """Debug level: the access line already carries the status of the response."""
        with contextlib.suppress(Exception):  # the log pipeline never breaks the call
            self.logger.debug(
                "function.client_error", function=self.name, error_type=kind, status_code=status
            )

    def _log_once(self, exc: BaseException, kind: str) -> None:
        """Log ``exc`` unless an inner decorated call already did."""
        try:
            if getattr(exc, _LOGGED_MARK, False):
                return
            with contextlib.suppress(Exception):  # a class refusing attributes: log anyway
                setattr(exc, _LOGGED_MARK, True)
            self.logger.error("function.failed", function=self.name, error_type=kind, exc_info=exc)
        except Exception:  # the log pipeline never breaks the call
            pass


def _nothing(elapsed: float) -> None:
    """``record_ok`` of a site without metrics."""


def block_site() -> CallSite:
    """The site behind ``span(...)`` blocks: spans only, no metrics, no log."""
    return CallSite(
        block_site,
        name="span",
        attributes=None,
        record_args=(),
        kind=SpanKind.INTERNAL,
        metrics=None,
        log_errors=False,
        tracing=None,
    )


def _mark_span(span: Span, exc: BaseException, outcome: str, kind: str, status: int | None) -> None:
    try:
        if not span.is_recording():
            return
        if outcome == "error":
            span.add_event("exception", exception_attributes(exc))  # no exception.escaped
            span.set_attribute("error.type", kind)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        elif outcome == "client_error":  # the framework answers it: no Error status
            span.set_attribute("http.response.status_code", status or 0)
        elif outcome == "cancelled":
            span.set_attribute("cancelled", True)
    except Exception:  # e.g. an exception whose __str__ raises
        pass


def _end(span: Span) -> None:
    try:  # noqa: SIM105 - a hot path: contextlib.suppress would add a context manager
        span.end()
    except Exception:
        pass
