"""Decorators and the manual API: ``traced``, ``timed``, ``counted`` and ``span``.

    @obs.traced                                  # span + calls/duration metrics + error log
    async def charge(card: Card) -> Receipt: ...

    @obs.traced(name="checkout.pay", record_args=("user_id",), kind=SpanKind.SERVER)
    def pay(user_id: int, card: Card) -> None: ...

    @obs.timed                                   # duration histogram only
    def render() -> str: ...

    with obs.timed("cache.rebuild"):             # ... or around a block
        rebuild()

    with obs.span("load-config", path=path) as span:
        ...

Sync functions, coroutines, generators, async generators, methods, classmethods and
staticmethods all work; the wrapper is chosen once, at decoration time, and keeps the
signature, docstring, ``__wrapped__`` and ``inspect.iscoroutinefunction`` (``wrapt``).
Only the OpenTelemetry API is used: before ``setup()`` the decorators record metrics
and skip spans.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Callable, Mapping, Sequence
from time import perf_counter
from types import TracebackType
from typing import Any, Final, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind
from opentelemetry.util.types import AttributeValue

from . import _wrappers
from ._call_metrics import CallMetrics, own_counter
from ._call_site import CallSite, block_site, failure_of, module_of, name_of
from ._call_tracing import NoTracing, Tracing

__all__ = ["counted", "span", "timed", "traced"]

_F = TypeVar("_F", bound="Callable[..., Any] | classmethod[Any, Any, Any] | staticmethod[Any, Any]")
_NO_TRACING: Final = NoTracing()
_SPAN_SITE: Final = block_site()


def _unwrap_method(fn: Any) -> Callable[..., Any]:
    """The function inside a ``classmethod``/``staticmethod`` object."""
    return fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn


@overload
def traced(fn: _F, /) -> _F: ...


@overload
def traced(
    name_: str | None = None,
    /,
    *,
    name: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    record_args: Sequence[str] = (),
    kind: SpanKind = SpanKind.INTERNAL,
    metrics: bool = True,
    log_errors: bool = True,
    tracer_provider: trace.TracerProvider | None = None,
) -> Callable[[_F], _F]: ...


def traced(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    record_args: Sequence[str] = (),
    kind: SpanKind = SpanKind.INTERNAL,
    metrics: bool = True,
    log_errors: bool = True,
    tracer_provider: trace.TracerProvider | None = None,
) -> Any:
    """A span around every call, ``function.calls``/``function.duration`` metrics, and one
    error log line (with trace ids) when the call raises.

    ``@traced``, ``@traced("name")`` or ``@traced(name=..., ...)``:

    - ``name``: span name and ``function`` label (default: the qualified name);
    - ``attributes``: fixed span attributes, added to ``code.function.name``,
      ``code.file.path`` and ``code.line.number``;
    - ``record_args``: parameters whose values become ``arg.<name>`` span attributes,
      redacted by the redaction policy and cut to 256 characters;
    - ``kind``: the span kind; ``metrics``/``log_errors``: turn those parts off;
    - ``tracer_provider``: a provider to use instead of the global one.

    Exceptions are recorded on the span and re-raised unchanged; cancellation
    (``asyncio.CancelledError``) is recorded as ``outcome="cancelled"``, not as an error,
    and an HTTP exception with a 4xx status (FastAPI's ``HTTPException(404)``) as
    ``outcome="client_error"``: span status unset, a debug log line, no error log.

    A plain or ``async`` function is also a fault point named ``name``: once the process
    is armed (``setup(faults_enabled=True)``), fault rules whose ``targets`` name it
    delay it or raise in its place, inside its span (:mod:`unified_obs.resilience.faults`).
    """

    def decorate(target: Any) -> Any:
        function = _unwrap_method(target)
        site = CallSite(
            function,
            name=name,
            attributes=attributes,
            record_args=record_args,
            kind=kind,
            metrics=CallMetrics(name or name_of(function), module_of(function))
            if metrics
            else None,
            log_errors=log_errors,
            tracing=None if tracer_provider is None else Tracing(tracer_provider),
        )
        return _wrappers.wrap(target, site)

    if fn is None or isinstance(fn, str):
        name = name or fn
        return decorate
    return decorate(fn)


class _Measure:
    """What ``timed`` and ``counted`` return: a decorator and a context manager in one."""

    __slots__ = ("_block", "_count", "_counter", "_module", "_name", "_time")

    def __init__(self, name: str | None, module: str, *, count: bool, time: bool) -> None:
        self._name = name
        self._module = module
        self._count = count
        self._time = time
        # counted("jobs.processed"): its own counter, fetched once and handed to the metrics;
        # a bad or clashing name: ConfigError now
        self._counter: Any = own_counter(name) if count and name is not None else None
        self._block: CallMetrics | None = None

    def _metrics(self, name: str, module: str) -> CallMetrics:
        return CallMetrics(name, module, count=self._count, time=self._time, counter=self._counter)

    def __call__(self, fn: _F) -> _F:
        """Decorate ``fn``: every call is measured, whatever kind of callable it is."""
        function = _unwrap_method(fn)
        name = self._name or name_of(function)
        site = CallSite(
            function,
            name=name,
            attributes=None,
            record_args=(),
            kind=SpanKind.INTERNAL,
            metrics=self._metrics(name, module_of(function)),
            log_errors=False,
            tracing=_NO_TRACING,
        )
        return _wrappers.wrap(fn, site)  # type: ignore[no-any-return]

    def __enter__(self) -> None:
        """Start measuring a block (re-entrant: nested and concurrent blocks are separate)."""
        if self._block is None:
            name = self._name
            if name is None:  # named after the function the block is in
                code = sys._getframe(1).f_code
                name = getattr(code, "co_qualname", code.co_name)
            self._block = self._metrics(name, self._module)
        _STARTS.set((*_STARTS.get(), (self, perf_counter())))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Record the block; its exception, if any, propagates."""
        end = perf_counter()
        starts = _STARTS.get()
        for index in range(len(starts) - 1, -1, -1):
            if starts[index][0] is self:
                _STARTS.set(starts[:index] + starts[index + 1 :])
                _record_block(self._block, end - starts[index][1], exc)
                return


_STARTS: Final[contextvars.ContextVar[tuple[tuple[_Measure, float], ...]]] = contextvars.ContextVar(
    "unified_obs_measure_starts", default=()
)


def _record_block(metrics: CallMetrics | None, elapsed: float, exc: BaseException | None) -> None:
    if metrics is None:
        return
    outcome, kind, _ = ("ok", "", None) if exc is None else failure_of(exc)
    if outcome == "ok":
        metrics.ok(elapsed)
    else:
        metrics.failed(elapsed, outcome, kind)


@overload
def timed(fn: _F, /) -> _F: ...


@overload
def timed(name_: str | None = None, /, *, name: str | None = None) -> _Measure: ...


def timed(fn_or_name: Any = None, /, *, name: str | None = None) -> Any:
    """Record ``function.duration`` (seconds, with exemplars) and nothing else.

    ``@timed``, ``@timed("name")`` or ``@timed(name="name")`` on any kind of callable, or
    ``with timed("name"):``
    around a block (named after the enclosing function when ``name`` is omitted).
    """
    return _measure(fn_or_name, name, count=False, time=True)


@overload
def counted(fn: _F, /) -> _F: ...


@overload
def counted(name_: str | None = None, /, *, name: str | None = None) -> _Measure: ...


def counted(fn_or_name: Any = None, /, *, name: str | None = None) -> Any:
    """Count calls by ``outcome`` (``ok``, ``error``, ``cancelled``) and ``error_type``,
    and nothing else.

    ``@counted("jobs.processed")`` (or ``name=...``, or ``with counted("jobs.processed"):``
    around a block) counts in a counter of that name: ``jobs_processed_total`` in
    Prometheus, a bad or clashing name raising ``ConfigError`` here.  A bare ``@counted``
    counts in ``function.calls`` (``function_calls_total``) under the function's
    qualified name and module, like ``traced``.
    """
    return _measure(fn_or_name, name, count=True, time=False)


def _measure(fn_or_name: Any, name: str | None, *, count: bool, time: bool) -> Any:
    if fn_or_name is None or isinstance(fn_or_name, str):
        module = str(sys._getframe(2).f_globals.get("__name__", ""))
        return _Measure(name or fn_or_name, module, count=count, time=time)
    return _Measure(name, "", count=count, time=time)(fn_or_name)


class span:  # a class named like a function: used as ``with obs.span(...)``
    """A span around a block, current inside it: ``with obs.span("name", key=value) as s:``.

    The exception leaving the block, if any, is recorded on the span (``error.type``,
    status Error; cancellation as ``cancelled``) and propagates unchanged.  Like
    ``traced``, no span is made inside a trace that is not sampled.
    """

    __slots__ = ("_attributes", "_name", "_span", "_start", "_token")

    def __init__(self, name: str, /, **attributes: AttributeValue) -> None:
        self._name = name
        self._attributes = attributes
        self._span: Span | None = None
        self._token: object = None

    def __enter__(self) -> Span:
        """Start the span and make it current; returns it (the current span when skipped)."""
        opened = _SPAN_SITE.begin_block(self._name, self._attributes)
        if opened is None:
            return trace.get_current_span()
        self._span = opened[0]
        self._token = otel_context.attach(opened[1])
        self._start = perf_counter()
        return self._span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """End the span; an exception is recorded and propagates."""
        span, token = self._span, self._token
        if span is None:
            return
        self._span = self._token = None
        if exc is None:
            _SPAN_SITE.end_ok(self._start, span)
        else:
            _SPAN_SITE.end_error(self._start, span, exc)
        otel_context.detach(token)  # type: ignore[arg-type]

    async def __aenter__(self) -> Span:
        """``async with obs.span(...)``: same as ``with``."""
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Same as ``__exit__``."""
        self.__exit__(exc_type, exc, traceback)
