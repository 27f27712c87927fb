"""What one decorated function (a *call site*) knows and does per call.

Everything that can be computed once is computed when the function is decorated:
the span name, the ``code.*`` attributes, the metric label values, the logger.
Per call a site does the least it can:

- no tracer provider installed: time the call and record metrics, nothing else;
- the current span belongs to a trace that is not sampled and the provider's sampler
  follows its parent (``ParentBased``, the default): the same, no span at all;
- otherwise a span is started with ``tracer.start_span`` and the wrappers make it
  current with ``context.attach``/``detach`` (cheaper than ``start_as_current_span``,
  which stacks two generator context managers).

Telemetry never raises into the application: failures here are swallowed.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import time
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.util.types import AttributeValue

from . import _call_args, _call_metrics
from .logs import get_logger

__all__ = [
    "CallSite",
    "NoTracing",
    "Tracing",
    "block_site",
    "code_attributes",
    "error_type",
    "module_of",
    "name_of",
    "outcome_of",
]

_OFF: Final = 0
"""No SDK provider: spans would all be no-ops."""
_PARENT_BASED: Final = 1
"""Children of unsampled parents are dropped by the sampler, so they can be skipped."""
_FULL: Final = 2
"""Every call asks the SDK."""

perf_counter: Final = time.perf_counter


def _context_getter() -> Callable[[], otel_context.Context]:
    """``context.get_current`` without its two layers of calls, when the runtime context
    is the default ``ContextVar`` one (the public function otherwise)."""
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    return var.get if isinstance(var, contextvars.ContextVar) else otel_context.get_current


get_current: Final = _context_getter()
get_tracer_provider: Final = trace.get_tracer_provider
set_span_in_context: Final = trace.set_span_in_context
_LOGGED_MARK: Final = "__unified_obs_logged__"
_DROPS_UNSAMPLED_CHILDREN: Final = (
    ",remoteParentNotSampled:AlwaysOffSampler,",
    ",localParentNotSampled:AlwaysOffSampler}",
)


class Tracing:
    """The tracer for the current provider and how much span work a call may skip.

    Resolved lazily and again whenever the global provider changes, so decorators
    applied at import time work before ``setup()`` and pick up the SDK after it.
    """

    __slots__ = ("_explicit", "_provider", "_unsampled", "mode", "tracer")

    def __init__(self, provider: trace.TracerProvider | None = None) -> None:
        self._explicit = provider
        self._provider: object = None
        self._unsampled: object = None  # the last unsampled parent span seen
        self.tracer: trace.Tracer = trace.NoOpTracer()
        self.mode = _OFF

    def parent_context(self) -> otel_context.Context | None:
        """The current context to start a span in, or ``None`` when no span is needed."""
        try:
            provider = self._explicit or get_tracer_provider()
            if provider is not self._provider:
                self._resolve(provider)
            if self.mode == _OFF:
                return None
            parent_context = get_current()
            parent: Span | None = parent_context.get(_SPAN_KEY)  # type: ignore[assignment]
            if parent is None:
                return parent_context
            if parent is self._unsampled:  # every call of one unsampled request: one check
                return None
            if self.mode == _PARENT_BASED and not parent.is_recording():
                span_context = parent.get_span_context()
                if span_context.is_valid and not span_context.trace_flags.sampled:
                    self._unsampled = parent  # immutable verdict: unsampled stays unsampled
                    return None
            return parent_context
        except Exception:  # telemetry must never break the call
            return None

    def _resolve(self, provider: trace.TracerProvider) -> None:
        if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
            self.tracer, self.mode = trace.NoOpTracer(), _OFF
        else:
            self.tracer = provider.get_tracer("unified_obs.decorators")
            self.mode = _PARENT_BASED if _drops_unsampled_children(provider) else _FULL
        self._unsampled = None
        self._provider = provider  # last: other threads re-resolve until this is set


def _drops_unsampled_children(provider: object) -> bool:
    """Whether the provider's sampler is ``ParentBased`` with the default (drop) decision
    for unsampled parents; read from its description, the only public view of it."""
    sampler = getattr(provider, "sampler", None)
    describe = getattr(sampler, "get_description", None)
    if describe is None:
        return False
    try:
        text = str(describe())
    except Exception:
        return False
    return text.startswith("ParentBased{") and all(p in text for p in _DROPS_UNSAMPLED_CHILDREN)


class NoTracing(Tracing):
    """For metrics-only sites (``timed``, ``counted``): never a span."""

    __slots__ = ()

    def parent_context(self) -> otel_context.Context | None:
        """Always ``None``: no span."""
        return None


_global_tracing: Final = Tracing()


def outcome_of(exc: BaseException) -> str:
    """``error`` for exceptions, ``ok`` for a generator being closed, ``cancelled`` for
    cancellation and interruption (``CancelledError``, ``KeyboardInterrupt``, ``SystemExit``)."""
    if isinstance(exc, Exception):
        return "error"
    if isinstance(exc, GeneratorExit):
        return "ok"
    return "cancelled"


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
        self.arguments: Final = _call_args.ArgumentRecorder.for_function(fn, record_args)
        self.kind: Final = kind
        self.metrics: Final = metrics
        self.record_ok: Final = _nothing if metrics is None else metrics.ok
        """Record the metrics of a successful call that made no span (never raises)."""
        self.log_errors: Final = log_errors
        self.logger: Final = get_logger(module_of(fn) or "unified_obs.decorators")
        self.tracing: Final = _global_tracing if tracing is None else tracing

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
            return span, set_span_in_context(span, parent_context)
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
            return span, set_span_in_context(span, parent_context)
        except Exception:
            return None

    def end_ok(self, start: float, span: Span | None) -> None:
        """Record a successful call (metrics while the span is still current, then end it)."""
        self.record_ok(perf_counter() - start)
        if span is not None:
            _end(span)

    def end_error(self, start: float, span: Span | None, exc: BaseException) -> None:
        """Record a call that raised ``exc``: span status, one error log, metrics; each part
        guarded on its own, so the span always ends."""
        elapsed = perf_counter() - start
        outcome = outcome_of(exc)
        kind = error_type(exc) if outcome == "error" else ""
        if span is not None:
            _mark_span(span, exc, outcome, kind)
        if outcome == "error" and self.log_errors:
            self._log_once(exc, kind)
        if self.metrics is not None:
            self.metrics.failed(elapsed, outcome, kind)
        if span is not None:
            _end(span)

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


def _mark_span(span: Span, exc: BaseException, outcome: str, kind: str) -> None:
    try:
        if not span.is_recording():
            return
        if outcome == "error":
            span.record_exception(exc, escaped=True)
            span.set_attribute("error.type", kind)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        elif outcome == "cancelled":
            span.set_attribute("cancelled", True)
    except Exception:  # e.g. an exception whose __str__ raises
        pass


def _end(span: Span) -> None:
    try:  # noqa: SIM105 - a hot path: contextlib.suppress would add a context manager
        span.end()
    except Exception:
        pass
