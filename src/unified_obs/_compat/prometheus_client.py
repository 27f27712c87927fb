"""prometheus_client's private names, each use behind a probe.

* ``prometheus.child_values``: a metric child keeps its numbers in ``values.ValueClass``
  objects (``MutexValue`` in a single process) -- a counter's or gauge's at ``_value``, a
  histogram's at ``_buckets`` and ``_sum`` with its bounds at ``_upper_bounds``.  Our bound
  series put values of our own in their place (:class:`ExemplarValue` and subclasses: the
  ``MutexValue`` interface with the number, lock and exemplar as public fields), so the
  hot path adds under the value's lock without a call and stores a raw exemplar tuple.
  The probe puts ours in place on a real counter and histogram and reads them back
  through ``collect()``.  Public fallback: :class:`PublicValue` over the children's own
  ``inc``/``set``/``observe`` and ``collect()`` (no exemplars).

In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) the values are the library's files:
the bound series take the public path there, without asking the probe (whose metrics
would otherwise land in the shared files).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any, Final

from prometheus_client import values
from prometheus_client.samples import Exemplar

from ._probes import decide, register

__all__ = [
    "CHILD_VALUES",
    "ExemplarValue",
    "PublicValue",
    "child_value",
    "dead_child",
    "histogram_values",
]

CHILD_VALUES: Final = "prometheus.child_values"


class ExemplarValue:
    """A single-process value (the ``MutexValue`` interface) whose exemplar is stored raw
    -- ``(span context, value, time)`` -- and formatted when read."""

    __slots__ = ("exemplar", "lock", "number")

    def __init__(self, number: float = 0.0) -> None:
        self.number = number
        self.exemplar: Any = None
        self.lock = threading.Lock()

    def inc(self, amount: float) -> None:
        with self.lock:
            self.number += amount

    def set(self, value: float, timestamp: float | None = None) -> None:
        with self.lock:
            self.number = value

    def set_exemplar(self, exemplar: Exemplar) -> None:
        self.exemplar = exemplar

    def get(self) -> float:
        with self.lock:
            return self.number

    def get_exemplar(self) -> Exemplar | None:
        """The exemplar as ``prometheus_client`` renders it (ids as lowercase hex)."""
        raw = self.exemplar
        if raw is None or isinstance(raw, Exemplar):
            return raw
        ctx, value, timestamp = raw
        labels = {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}
        return Exemplar(labels, value, timestamp)


def _adopted(value: Any, kind: Callable[[float], Any]) -> Any:
    """A fresh ``kind`` with the number of a plain single-process value; any other value
    (multiprocess, or ours already) as it is."""
    if type(value) is not values.MutexValue:
        return value
    return kind(value._value)


class PublicValue:
    """The public fallback: a counter's or gauge's child behind the value interface."""

    __slots__ = ("_child",)
    lock: Final = None
    carries: Final = True

    def __init__(self, child: Any) -> None:
        self._child = child

    def inc(self, amount: float) -> None:
        self._child.inc(amount) if amount >= 0 else self._child.dec(-amount)

    def set(self, value: float, timestamp: float | None = None) -> None:
        self._child.set(value)

    def get(self) -> float:
        """A counter's ``_total`` or a gauge's one sample."""
        found = (s.value for s in _samples(self._child) if not s.name.endswith("_created"))
        return next(found, 0.0)

    def get_exemplar(self) -> None:
        return None


def _samples(child: Any) -> list[Any]:
    return [sample for metric in child.collect() for sample in metric.samples]


def child_value(child: Any, kind: Callable[[float], Any] = ExemplarValue) -> Any:
    """The value a counter's or gauge's child keeps its number in: ``kind(number)`` (an
    :class:`ExemplarValue` or a subclass) in place of a plain one; a multiprocess value as
    it is; a :class:`PublicValue` where the layout is unknown."""
    if not _known_layout():
        return PublicValue(child)
    child._value = value = _adopted(child._value, kind)
    return value


class _PublicBucket:
    """The public fallback's view of one histogram bucket (read from ``collect()``; the
    histogram's ``observe`` counts it)."""

    __slots__ = ("_child", "_index")
    lock: Final = None
    carries: Final = False  # what it holds cannot be added to another histogram

    def __init__(self, child: Any, index: int) -> None:
        self._child, self._index = child, index

    def inc(self, amount: float) -> None:
        pass  # counted by _PublicSum's observe

    def get(self) -> float:
        return _bucket_count(_cumulative(_samples(self._child)), self._index)

    def get_exemplar(self) -> None:
        return None


class _PublicSum(_PublicBucket):
    """The public fallback's histogram sum: ``inc(value)`` is one ``observe(value)``."""

    __slots__ = ()

    def inc(self, amount: float) -> None:
        self._child.observe(amount)

    def get(self) -> float:
        return _sum(_samples(self._child))

    def counts_and_sum(self, buckets: int) -> tuple[list[float], float]:
        """What the first ``buckets`` bucket views' ``get()`` and this one's return, read
        from one ``collect()`` (each ``get()`` collects the whole child)."""
        samples = _samples(self._child)
        cumulative = _cumulative(samples)
        return [_bucket_count(cumulative, index) for index in range(buckets)], _sum(samples)


def _cumulative(samples: list[Any]) -> list[float]:
    return [s.value for s in samples if s.name.endswith("_bucket")]


def _bucket_count(cumulative: list[float], index: int) -> float:
    """Bucket ``index``'s own count, from the cumulative ``_bucket`` values."""
    found = cumulative[index] if index < len(cumulative) else 0.0
    return found - (cumulative[index - 1] if index else 0.0)


def _sum(samples: list[Any]) -> float:
    return next((s.value for s in samples if s.name.endswith("_sum")), 0.0)


def _public_bounds(child: Any) -> list[float]:
    """The upper bounds in the child's ``_bucket`` samples (``+Inf`` last; a child that
    reports none has the one ``+Inf`` bucket)."""
    bounds = [float(s.labels["le"]) for s in _samples(child) if s.name.endswith("_bucket")]
    return bounds or [math.inf]


def histogram_values(child: Any) -> tuple[list[float], list[Any], Any]:
    """A histogram child's ``(upper bounds, bucket values, sum value)``, plain values
    replaced by :class:`ExemplarValue`; where the layout is unknown, public views whose sum
    observes through the child's ``observe`` (a bucket's ``inc`` then does nothing)."""
    if not _known_layout():
        bounds = _public_bounds(child)
        return bounds, [_PublicBucket(child, i) for i in range(len(bounds))], _PublicSum(child, 0)
    child._buckets = [_adopted(bucket, ExemplarValue) for bucket in child._buckets]
    child._sum = _adopted(child._sum, ExemplarValue)
    return list(child._upper_bounds), list(child._buckets), child._sum


def _known_layout() -> bool:
    """Whether values are single-process (the library's files otherwise: reached through
    the children's public methods) and the probe knows their layout."""
    single = values.ValueClass is values.MutexValue  # multiprocess.enable() switches it
    return single and decide(CHILD_VALUES, _values_are_replaceable)


class _DeadValue:
    """Stands in for a value nobody reads: the target of dropped measurements."""

    lock: Final = None

    def inc(self, amount: float) -> None:
        pass

    def set(self, value: float, timestamp: float | None = None) -> None:
        pass

    def get(self) -> float:
        return 0.0

    def get_exemplar(self) -> None:
        return None


class _DeadChild:
    """A child no registry holds: laid out like the library's, with no-op methods."""

    def __init__(self) -> None:
        dead = _DeadValue()
        self._value, self._sum, self._buckets, self._upper_bounds = dead, dead, [dead], [math.inf]

    def inc(self, *args: Any, **kwargs: Any) -> None:
        pass

    dec = set = observe = inc

    def collect(self) -> list[Any]:
        return []


def dead_child() -> Any:
    """A child whose measurements go nowhere (an instrument after its limit)."""
    return _DeadChild()


def _values_are_replaceable() -> bool:
    """A real counter and histogram, their plain values replaced by ours, report through
    ``collect()`` what was added to ours, exemplar included."""
    from opentelemetry.trace import SpanContext, TraceFlags
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    counter = Counter("probe", "probe", registry=registry)
    histogram = Histogram("probe_seconds", "probe", buckets=(1.0,), registry=registry)
    mine = counter._value = _adopted(counter._value, ExemplarValue)
    mine.number += 2.0
    mine.exemplar = (SpanContext(1, 2, False, TraceFlags(1)), 2.0, 0.0)
    histogram._sum = _adopted(histogram._sum, ExemplarValue)
    histogram._buckets = [_adopted(b, ExemplarValue) for b in histogram._buckets]
    histogram._buckets[0].number += 1.0
    histogram._sum.number += 0.5
    found = {s.name: (s.value, s.exemplar) for m in registry.collect() for s in m.samples}
    total, exemplar = found.get("probe_total", (None, None))
    return (
        total == 2.0
        and exemplar is not None
        and exemplar.labels == {"trace_id": f"{1:032x}", "span_id": f"{2:016x}"}
        and found.get("probe_seconds_sum", (None,))[0] == 0.5
        and found.get("probe_seconds_count", (None,))[0] == 1.0
        and list(histogram._upper_bounds) == [1.0, math.inf]
    )


PROBES: Final[dict[str, Callable[[], bool]]] = {CHILD_VALUES: _values_are_replaceable}
register(PROBES)
