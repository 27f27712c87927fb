"""Bound children: one series each, recording straight into ``prometheus_client`` values.

A bound child keeps direct references to the value objects of its ``prometheus_client``
child and skips the checks already done when it was bound.  When a sampled span is
current, an increment or observation stores ``(span context, value, time)`` as the
exemplar of its series (a tuple: no formatting, no lock on the hot path); the trace and
span ids are formatted only when ``/metrics`` or OTLP reads the exemplar.  Nothing here
raises into the caller: bad input is dropped and logged, rate-limited.
"""

from __future__ import annotations

import bisect
import functools
import inspect
import itertools
import logging
import math
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, Final, TypeVar

from prometheus_client import values
from prometheus_client.samples import Exemplar

from .._lockfree import peek
from ..context import SPAN_KEY, current_otel_context

__all__ = [
    "Bound",
    "BoundCounter",
    "BoundGauge",
    "BoundHistogram",
    "Timer",
    "dead_child",
    "forget_warnings",
    "warn_limited",
]

_log: Final = logging.getLogger("unified_obs")
F = TypeVar("F", bound=Callable[..., Any])


class ExemplarValue(values.MutexValue):
    """A single-process value whose exemplar is stored raw and formatted when read."""

    def get_exemplar(self) -> Exemplar | None:
        """The exemplar as ``prometheus_client`` renders it (ids as lowercase hex)."""
        raw = self._exemplar
        if raw is None or isinstance(raw, Exemplar):
            return raw
        ctx, value, timestamp = raw
        labels = {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}
        return Exemplar(labels, value, timestamp)


class TickedValue(values.MutexValue):
    """A single-process gauge value that also takes steps of one without a lock: the
    ``__next__`` of its two ``itertools.count`` objects is a step (one C call, atomic
    under the GIL), and every read adds their difference to the locked value.  An
    in-flight gauge moved twice per request then pays no lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self.ups = itertools.count()
        self.downs = itertools.count()

    def _ticks(self) -> int:
        downs = peek(self.downs)
        return peek(self.ups) - downs

    def get(self) -> float:
        with self._lock:
            return float(self._value + self._ticks())

    def set(self, value: float, timestamp: float | None = None) -> None:
        with self._lock:
            self._value = value - self._ticks()


def _fresh(value: Any, kind: type[values.MutexValue]) -> Any:
    """A fresh ``kind`` (a ``MutexValue`` subclass) for a plain single-process value, with
    the same number; ``value`` itself for multiprocess values (``prometheus_client``'s
    files keep neither exemplars nor lock-free steps).  Fresh, not re-classed: a
    re-classed object loses CPython's fast attribute access."""
    if type(value) is not values.MutexValue:
        return value
    promoted = kind("", "", "", (), (), "")
    promoted._value = value._value
    return promoted


def _plain(value: Any) -> bool:
    return type(value) is ExemplarValue


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
        """Drop a bad measurement, with a rate-limited warning."""
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

    __slots__ = ("_lock", "_value")

    def _attach(self, child: Any) -> None:
        old = getattr(self, "_value", None)
        self._child = child
        child._value = _fresh(child._value, ExemplarValue)
        self._value = child._value
        self._lock = self._value._lock if _plain(self._value) else None
        if old is not None and old is not self._value:
            self._value.inc(old.get())

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (negative or NaN amounts are ignored with a warning)."""
        try:
            if amount >= 0:
                lock = self._lock
                if lock is None:  # multiprocess value: no exemplars there
                    self._value.inc(amount)
                    return
                with lock:
                    self._value._value += amount
                span = current_otel_context().get(SPAN_KEY)
                if span is not None:
                    ctx = span.get_span_context()
                    if ctx.trace_flags & 1:  # sampled
                        self._value._exemplar = (ctx, amount, time.time())
            else:
                self._misuse("negative increment", amount)
        except Exception:
            self._misuse("bad increment", amount)

    def value(self) -> float:
        """The count in this process."""
        return float(self._value.get())

    def exemplar(self) -> Any:
        """The latest exemplar (``None`` before one, and in multiprocess mode)."""
        return self._value.get_exemplar()


class BoundGauge(Bound):
    """A gauge (or up-down counter) series.  ``up()`` and ``down()`` move it by one: on a
    single-process value without a lock (:class:`TickedValue`), else through ``inc``."""

    __slots__ = ("_lock", "_value", "down", "up")
    _lock: Any
    up: Callable[[], object]
    down: Callable[[], object]

    def _attach(self, child: Any) -> None:
        old = getattr(self, "_value", None)
        self._child = child
        child._value = self._value = value = _fresh(child._value, TickedValue)
        if type(value) is TickedValue:
            self._lock = value._lock
            self.up, self.down = value.ups.__next__, value.downs.__next__
        else:
            self._lock = None
            self.up, self.down = self.inc, self.dec
        if old is not None and old is not value:
            value.set(old.get())

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount``."""
        try:
            value = amount if type(amount) is float else float(amount)
            lock = self._lock
            if lock is None:  # a multiprocess value
                self._value.inc(value)
                return
            with lock:  # the value's own lock, without its method's call (a request path)
                self._value._value += value
        except Exception:
            self._misuse("bad amount", amount)

    def dec(self, amount: float = 1.0) -> None:
        """Subtract ``amount``."""
        try:
            value = -amount if type(amount) is float else -float(amount)
            lock = self._lock
            if lock is None:
                self._value.inc(value)
                return
            with lock:
                self._value._value += value
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

    __slots__ = ("_bounds", "_buckets", "_lock", "_sum")

    def _attach(self, child: Any) -> None:
        old = getattr(self, "_buckets", None)
        old_sum = getattr(self, "_sum", None)
        self._child = child
        child._buckets = [_fresh(bucket, ExemplarValue) for bucket in child._buckets]
        child._sum = _fresh(child._sum, ExemplarValue)
        self._bounds = list(child._upper_bounds)
        self._buckets = list(child._buckets)
        self._sum = child._sum
        plain = all(_plain(v) for v in (*self._buckets, self._sum))
        self._lock = self._sum._lock if plain else None  # one lock for the whole series
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
            lock = self._lock
            if lock is None:  # multiprocess values: no exemplars there
                bucket.inc(1.0)
                self._sum.inc(value)
                return
            with lock:
                bucket._value += 1.0
                self._sum._value += value
            span = current_otel_context().get(SPAN_KEY)
            if span is not None:
                ctx = span.get_span_context()
                if ctx.trace_flags & 1:  # sampled
                    bucket._exemplar = (ctx, value, time.time())
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


def dead_child() -> Any:
    dead = _DeadValue()
    return SimpleNamespace(_value=dead, _sum=dead, _buckets=[dead], _upper_bounds=[math.inf])
