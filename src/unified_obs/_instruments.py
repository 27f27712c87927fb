"""Instruments over ``prometheus_client``: bound children, cardinality guard, exemplars.

``prometheus_client`` holds the numbers (one store on the hot path).  A bound child keeps
direct references to the value objects of its ``prometheus_client`` child and skips the
checks that are already done at bind time; ``labels()`` answers from a dict keyed by the
label values as given.  When a sampled span is current, increments and observations carry
its ``trace_id``/``span_id`` as an exemplar.  Nothing on the record path raises.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import inspect
import logging
import math
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Final, Generic, TypeVar

from opentelemetry import context as otel_context
from opentelemetry.trace import Span
from opentelemetry.trace.propagation import _SPAN_KEY
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram
from prometheus_client.registry import CollectorRegistry
from prometheus_client.samples import Exemplar

from ._metric_names import prom_label, prom_name, unit_word

__all__ = [
    "INSTRUMENT_TYPES",
    "OVERFLOW",
    "Counter",
    "Definition",
    "Gauge",
    "Histogram",
    "Instrument",
    "UpDownCounter",
    "forget_warnings",
    "warn_limited",
]

OVERFLOW: Final = "__overflow__"
_log: Final = logging.getLogger("unified_obs")
F = TypeVar("F", bound=Callable[..., Any])


def _context_getter() -> Callable[[], Any]:
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    return var.get if isinstance(var, ContextVar) else otel_context.get_current


_current_context: Final = _context_getter()
_last_exemplar: list[Any] = [None, None]  # [SpanContext, labels]: one-entry cache


def _exemplar(span: Span, value: float) -> Exemplar | None:
    """An exemplar for ``span`` when it is sampled, else ``None``."""
    ctx = span.get_span_context()
    if not ctx.trace_flags & 1:
        return None
    cached = _last_exemplar
    if cached[0] is ctx:
        labels = cached[1]
    else:
        labels = {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}
        cached[1], cached[0] = labels, ctx
    return Exemplar(labels, value, time.time())


_last_warning: dict[str, float] = {}


def warn_limited(key: str, message: str, *args: object, every: float = 60.0) -> None:
    """Log a warning on the ``unified_obs`` logger at most once per ``every`` seconds."""
    now = time.monotonic()
    if now - _last_warning.get(key, -every) >= every:
        _last_warning[key] = now
        _log.warning(message, *args)


def forget_warnings() -> None:
    """Let every rate-limited warning fire again (``testing.reset``)."""
    _last_warning.clear()


@dataclass(frozen=True)
class Definition:
    """What defines an instrument; equal definitions return the same instrument."""

    kind: str  # counter | histogram | gauge | up_down_counter
    name: str
    description: str
    unit: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] | None = None
    multiprocess_mode: str = ""

    def prom_name(self, namespace: str | None) -> str:
        """The Prometheus family name (counters without ``_total``)."""
        kind = "gauge" if self.kind == "up_down_counter" else self.kind
        return prom_name(self.name, self.unit, kind, namespace)

    def build(self, registry: CollectorRegistry | None, namespace: str | None) -> Any:
        """A new ``prometheus_client`` parent metric for this definition."""
        kind = "gauge" if self.kind == "up_down_counter" else self.kind
        common: dict[str, Any] = {
            "name": self.prom_name(namespace),
            "documentation": self.description or self.name,
            "labelnames": [prom_label(label) for label in self.labels],
            "unit": unit_word(self.unit, kind),
            "registry": registry,
        }
        if self.kind == "counter":
            return PromCounter(**common)
        if self.kind == "histogram":
            return PromHistogram(**common, buckets=self.buckets or ())
        return PromGauge(**common, multiprocess_mode=self.multiprocess_mode)  # type: ignore[arg-type]


class Timer:
    """Observes the seconds a block or call takes; context manager and decorator."""

    __slots__ = ("_observe", "_start")

    def __init__(self, observe: Callable[[float], None]) -> None:
        self._observe = observe
        self._start = 0.0

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self._observe(time.perf_counter() - self._start)

    def __call__(self, func: F) -> F:
        observe = self._observe
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                with Timer(observe):
                    return await func(*args, **kwargs)

            return timed_async  # type: ignore[return-value]

        @functools.wraps(func)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with Timer(observe):
                return func(*args, **kwargs)

        return timed  # type: ignore[return-value]


class Bound:
    """A bound child: one series of an instrument."""

    __slots__ = ("_child", "_name")

    def __init__(self, child: Any, name: str) -> None:
        self._name = name
        self._child = child
        self._attach(child)

    def _attach(self, child: Any) -> None:
        self._child = child

    def move_to(self, child: Any) -> None:
        """Re-point at ``child`` (a rebuilt metric), carrying the values recorded so far."""
        self._attach(child)

    def _misuse(self, what: str, value: object) -> None:
        warn_limited(
            f"{self._name}:{what}", "unified_obs: %s %s ignored on %s", what, value, self._name
        )

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount``."""

    def dec(self, amount: float = 1.0) -> None:
        """Subtract ``amount``."""

    def set(self, value: float) -> None:
        """Set the value."""

    def observe(self, value: float) -> None:
        """Record one observation."""

    def time(self) -> Timer:
        """Observe (or set) the seconds a block or call takes."""
        return Timer(self.observe)

    def value(self) -> float:
        """The current value in this process (histograms: the count)."""
        return 0.0


class BoundCounter(Bound):
    """A counter series; increments carry an exemplar when a sampled span is current."""

    __slots__ = ("_value",)

    def _attach(self, child: Any) -> None:
        old = getattr(self, "_value", None)
        self._child = child
        self._value = child._value
        if old is not None and old is not self._value:
            self._value.inc(old.get())

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (negative or NaN amounts are ignored with a warning)."""
        try:
            if amount >= 0:
                self._value.inc(amount)
                span = _current_context().get(_SPAN_KEY)
                if span is not None:
                    exemplar = _exemplar(span, amount)
                    if exemplar is not None:
                        self._value.set_exemplar(exemplar)
            else:
                self._misuse("negative increment", amount)
        except Exception:
            self._misuse("bad increment", amount)

    def value(self) -> float:
        """The count in this process."""
        return float(self._value.get())


class BoundGauge(Bound):
    """A gauge (or up-down counter) series."""

    __slots__ = ("_value",)

    def _attach(self, child: Any) -> None:
        old = getattr(self, "_value", None)
        self._child = child
        self._value = child._value
        if old is not None and old is not self._value:
            self._value.set(old.get())

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount``."""
        try:
            self._value.inc(float(amount))
        except Exception:
            self._misuse("bad amount", amount)

    def dec(self, amount: float = 1.0) -> None:
        """Subtract ``amount``."""
        try:
            self._value.inc(-float(amount))
        except Exception:
            self._misuse("bad amount", amount)

    def set(self, value: float) -> None:
        """Set the value."""
        try:
            self._value.set(float(value))
        except Exception:
            self._misuse("bad value", value)

    def time(self) -> Timer:
        """Set the gauge to the seconds a block or call takes."""
        return Timer(self.set)

    def value(self) -> float:
        """The value in this process."""
        return float(self._value.get())


class BoundHistogram(Bound):
    """A histogram series; observations carry an exemplar when a sampled span is current."""

    __slots__ = ("_bounds", "_buckets", "_sum")

    def _attach(self, child: Any) -> None:
        old = getattr(self, "_buckets", None)
        old_sum = getattr(self, "_sum", None)
        self._child = child
        self._bounds = list(child._upper_bounds)
        self._buckets = list(child._buckets)
        self._sum = child._sum
        if old is not None and old_sum is not None and old_sum is not self._sum:
            for new, previous in zip(self._buckets, old, strict=True):
                new.inc(previous.get())
            self._sum.inc(old_sum.get())

    def observe(self, value: float) -> None:
        """Record ``value`` (NaN is ignored with a warning)."""
        try:
            if value != value:
                self._misuse("NaN observation", value)
                return
            bucket = self._buckets[bisect.bisect_left(self._bounds, value)]
            bucket.inc(1.0)
            self._sum.inc(value)
            span = _current_context().get(_SPAN_KEY)
            if span is not None:
                exemplar = _exemplar(span, value)
                if exemplar is not None:
                    bucket.set_exemplar(exemplar)
        except Exception:
            self._misuse("bad observation", value)

    def value(self) -> float:
        """The number of observations in this process."""
        return float(sum(bucket.get() for bucket in self._buckets))

    def snapshot(self) -> tuple[list[float], list[float], float, list[Exemplar | None]]:
        """(upper bounds without +Inf, per-bucket counts incl. +Inf, sum, exemplars)."""
        counts = [bucket.get() for bucket in self._buckets]
        exemplars = [bucket.get_exemplar() for bucket in self._buckets]
        return self._bounds[:-1], counts, float(self._sum.get()), exemplars


class _DeadValue:
    """Stands in for a value nobody reads: the target of dropped measurements."""

    def inc(self, amount: float) -> None:
        pass

    def set(self, value: float, timestamp: float | None = None) -> None:
        pass

    def set_exemplar(self, exemplar: Exemplar) -> None:
        pass

    def get(self) -> float:
        return 0.0

    def get_exemplar(self) -> None:
        return None


def _dead_child() -> Any:
    dead = _DeadValue()
    return SimpleNamespace(_value=dead, _sum=dead, _buckets=[dead], _upper_bounds=[math.inf])


B = TypeVar("B", bound=Bound)


class Instrument(Generic[B]):
    """A metric definition with its series; ``labels()`` returns cached bound children."""

    _bound_type: type[Bound] = Bound

    def __init__(
        self,
        definition: Definition,
        registry: CollectorRegistry | None,
        namespace: str | None,
        limit: int,
        on_overflow: Callable[[Instrument[Any]], None],
    ) -> None:
        self.definition: Final = definition
        self.limit = limit
        self.created = time.time()
        self._on_overflow = on_overflow
        self._metric = definition.build(registry, namespace)
        self._lock = threading.Lock()
        self._series: dict[tuple[str, ...], B] = {}
        self._positional: dict[tuple[Any, ...], B] = {}
        self._named: dict[tuple[tuple[str, Any], ...], B] = {}
        self._overflow: B | None = None
        self._noop: B = self._bound_type(_dead_child(), definition.name)  # type: ignore[assignment]
        self._default: B = self._bind(()) if not definition.labels else self._noop

    @property
    def name(self) -> str:
        """The OpenTelemetry instrument name."""
        return self.definition.name

    @property
    def prom_metric(self) -> Any:
        """The ``prometheus_client`` parent metric currently holding the values."""
        return self._metric

    def _bind(self, key: tuple[str, ...]) -> B:
        child = self._metric.labels(*key) if key else self._metric
        return self._bound_type(child, self.definition.name)  # type: ignore[return-value]

    def labels(self, *values: Any, **named: Any) -> B:
        """The bound child for these label values (positional or by name), cached."""
        try:
            found = self._named.get(tuple(named.items())) if named else self._positional.get(values)
        except TypeError:  # an unhashable label value
            found = None
        if found is None:
            return self._resolve(values, named)
        return found

    def _key(self, values: tuple[Any, ...], named: dict[str, Any]) -> tuple[str, ...] | None:
        names = self.definition.labels
        if named and not values and len(named) == len(names):
            try:
                return tuple(str(named[label]) for label in names)
            except KeyError:
                return None
        if not named and len(values) == len(names):
            return tuple(str(v) for v in values)
        return None

    def _resolve(self, values: tuple[Any, ...], named: dict[str, Any]) -> B:
        key = self._key(values, named) if self.definition.labels else None
        if key is None:
            warn_limited(
                f"{self.name}:labels",
                "unified_obs: %s expects labels %s, got %r; measurement dropped",
                self.name,
                self.definition.labels,
                named or values,
            )
            return self._noop
        bound = self._series.get(key)
        if bound is None:
            with self._lock:
                bound = self._series.get(key)
                if bound is None and len(self._series) < self.limit:
                    bound = self._series[key] = self._bind(key)
            if bound is None:
                return self._overflowed()
        self._remember(values, named, bound)
        return bound

    def _remember(self, values: tuple[Any, ...], named: dict[str, Any], bound: B) -> None:
        if len(self._positional) + len(self._named) >= 4 * self.limit:
            return
        if named:
            if all(type(v) is str for v in named.values()):
                self._named[tuple(named.items())] = bound
        elif all(type(v) is str for v in values):
            self._positional[values] = bound

    def _overflowed(self) -> B:
        if self._overflow is None:
            self._overflow = self._bind((OVERFLOW,) * len(self.definition.labels))
        self._on_overflow(self)
        return self._overflow

    def series(self) -> list[tuple[tuple[str, ...], B]]:
        """Every series with its label values (the overflow series last, if any)."""
        if not self.definition.labels:
            return [((), self._default)]
        with self._lock:
            found = list(self._series.items())
        if self._overflow is not None:
            found.append(((OVERFLOW,) * len(self.definition.labels), self._overflow))
        return found

    def rebuild(self, registry: CollectorRegistry | None, namespace: str | None) -> None:
        """Replace the ``prometheus_client`` metric (new name or value class), keeping values."""
        if registry is not None:
            with contextlib.suppress(KeyError):
                registry.unregister(self._metric)
        self._metric = self.definition.build(registry, namespace)
        for key, bound in self.series():
            bound.move_to(self._metric.labels(*key) if key else self._metric)

    def detach(self, registry: CollectorRegistry | None) -> None:
        """Stop exposing this instrument (``testing.reset``)."""
        if registry is not None:
            with contextlib.suppress(KeyError):
                registry.unregister(self._metric)

    def value(self, *values: Any, **named: Any) -> float | None:
        """This process's value of one series, ``None`` if never recorded (histograms: count)."""
        if not self.definition.labels:
            return self._default.value()
        key = self._key(values, named)
        bound = dict(self.series()).get(key) if key is not None else None
        return None if bound is None else bound.value()

    def __repr__(self) -> str:
        return f"<{self.definition.kind} {self.name!r} labels={self.definition.labels}>"


class Counter(Instrument[BoundCounter]):
    """A monotonic counter (``_total`` on ``/metrics``, a monotonic Sum over OTLP)."""

    _bound_type = BoundCounter

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (instruments without labels)."""
        self._default.inc(amount)


class Histogram(Instrument[BoundHistogram]):
    """A histogram with explicit buckets (seconds by default)."""

    _bound_type = BoundHistogram

    def observe(self, value: float) -> None:
        """Record one observation (instruments without labels)."""
        self._default.observe(value)

    def time(self) -> Timer:
        """Observe the seconds a block or call takes: context manager and decorator."""
        return self._default.time()


class Gauge(Instrument[BoundGauge]):
    """A value that goes up and down and can be set."""

    _bound_type = BoundGauge

    def set(self, value: float) -> None:
        """Set the value (instruments without labels)."""
        self._default.set(value)

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount``."""
        self._default.inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        """Subtract ``amount``."""
        self._default.dec(amount)

    def time(self) -> Timer:
        """Set the gauge to the seconds a block or call takes."""
        return self._default.time()


class UpDownCounter(Instrument[BoundGauge]):
    """A sum that goes up and down (in-flight work); summed over live workers."""

    _bound_type = BoundGauge

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount``."""
        self._default.inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        """Subtract ``amount``."""
        self._default.dec(amount)


INSTRUMENT_TYPES: Final[dict[str, type[Instrument[Any]]]] = {
    "counter": Counter,
    "histogram": Histogram,
    "gauge": Gauge,
    "up_down_counter": UpDownCounter,
}
