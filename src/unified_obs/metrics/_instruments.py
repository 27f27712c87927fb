"""Instruments over ``prometheus_client``: definitions, cached ``labels()``, cardinality guard.

``labels()`` answers from a dict keyed by the label values as given (strings only, so
``1`` and ``"1"`` never alias); on a miss the values are normalised, the series is found
or made, and past the instrument's limit the overflow series (every label
``"__overflow__"``) is returned instead.  The recording itself is in ``_bound``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from prometheus_client.registry import CollectorRegistry

from .. import limits
from ._names import prom_label, prom_name, unit_word
from ._own_families import OwnCounter, OwnGauge, OwnHistogram
from ._safe_labels import label_value
from ._series import (
    Bound,
    BoundCounter,
    BoundGauge,
    BoundHistogram,
    Timer,
    dead_child,
    forget_warnings,
    warn_limited,
)

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
    prometheus_name: str = ""
    """A fixed ``/metrics`` family name instead of the one derived from ``name`` (the
    process metrics keep the names every Prometheus dashboard knows); no namespace."""

    def prom_name(self, namespace: str | None) -> str:
        """The Prometheus family name (counters without ``_total``)."""
        if self.prometheus_name:
            return self.prometheus_name
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
        if self.kind == "counter":  # the Own* classes: /metrics writes them from their series
            return OwnCounter(**common)
        if self.kind == "histogram":
            return OwnHistogram(**common, buckets=self.buckets or ())
        return OwnGauge(**common, multiprocess_mode=self.multiprocess_mode)  # type: ignore[arg-type]


B = TypeVar("B", bound=Bound)


def _shape(values: tuple[Any, ...], named: dict[str, Any]) -> str:
    """What a wrong ``labels()`` call passed, without the values (they may be secrets)."""
    if named:
        return "labels " + repr(tuple(str(name)[:64] for name in named))
    return f"{len(values)} positional values"


class _NeedsLabels:
    """What ``inc()``/``observe()``/``set()`` reach on an instrument that has labels: the
    measurement is dropped with a rate-limited warning (never an exception)."""

    def __init__(self, definition: Definition) -> None:
        self._definition = definition

    def _drop(self, *args: object) -> None:
        warn_limited(
            f"{self._definition.name}:nolabels",
            "unified_obs: %s has labels %s; call .labels(...) first; measurement dropped",
            self._definition.name,
            self._definition.labels,
        )

    inc = dec = set = observe = _drop

    def time(self) -> Timer:
        """A timer whose observation is dropped the same way."""
        return Timer(self._drop)

    def value(self) -> float:
        """Nothing recorded."""
        return 0.0


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
        self._noop: B = self._bound_type(dead_child(), definition.name)  # type: ignore[assignment]
        self._default: B = (
            self._bind(()) if not definition.labels else _NeedsLabels(definition)  # type: ignore[assignment]
        )

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
        """The series key: each label value as text UTF-8 can encode, cut to the label
        value length limit (``label_value``); ``None`` when the labels do not match."""
        names = self.definition.labels
        length = limits.policy().label_value_length
        if named and not values and len(named) == len(names):
            try:
                return tuple(label_value(named[label], length) for label in names)
            except KeyError:
                return None
        if not named and len(values) == len(names):
            return tuple(label_value(v, length) for v in values)
        return None

    def _resolve(self, values: tuple[Any, ...], named: dict[str, Any]) -> B:
        if not self.definition.labels and not values and not named:
            return self._default  # labels() on an instrument without labels
        key = self._key(values, named) if self.definition.labels else None
        if key is None:
            warn_limited(
                f"{self.name}:labels",
                "unified_obs: %s expects labels %s, got %s; measurement dropped",
                self.name,
                self.definition.labels,
                _shape(values, named),
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
