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
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

from prometheus_client.samples import Exemplar

from .._compat.prometheus_client import ExemplarValue, child_value, dead_child, histogram_values
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


class TickedValue(ExemplarValue):
    """A single-process gauge value that also takes steps of one without a lock: the
    ``__next__`` of its two ``itertools.count`` objects is a step (one C call, atomic
    under the GIL), and every read adds their difference to the locked value.  An
    in-flight gauge moved twice per request then pays no lock."""

    __slots__ = ("downs", "ups")

    def __init__(self, number: float = 0.0) -> None:
        super().__init__(number)
        self.ups = itertools.count()
        self.downs = itertools.count()

    def _ticks(self) -> int:
        downs = peek(self.downs)
        return peek(self.ups) - downs

    def get(self) -> float:
        with self.lock:
            return float(self.number + self._ticks())

    def set(self, value: float, timestamp: float | None = None) -> None:
        with self.lock:
            self.number = value - self._ticks()


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
        self._value = value = child_value(child)
        self._lock = value.lock if _plain(value) else None
        if old is not None and old is not value:
            value.inc(old.get())

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (negative or NaN amounts are ignored with a warning)."""
        try:
            if amount >= 0:
                lock = self._lock
                if lock is None:  # multiprocess value: no exemplars there
                    self._value.inc(amount)
                    return
                with lock:
                    self._value.number += amount
                span = current_otel_context().get(SPAN_KEY)
                if span is not None:
                    ctx = span.get_span_context()
                    if ctx.trace_flags & 1:  # sampled
                        self._value.exemplar = (ctx, amount, time.time())
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
        self._value = value = child_value(child, TickedValue)
        if type(value) is TickedValue:
            self._lock = value.lock
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
                self._value.number += value
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
                self._value.number += value
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

    __slots__ = ("_bounds", "_buckets", "_lock", "_read_together", "_sum")

    def _attach(self, child: Any) -> None:
        old = getattr(self, "_buckets", None)
        old_sum = getattr(self, "_sum", None)
        self._child = child
        self._bounds, self._buckets, self._sum = histogram_values(child)
        # the public fallback's views: one collect() for every bucket and the sum
        self._read_together = getattr(self._sum, "counts_and_sum", None)
        plain = all(_plain(v) for v in (*self._buckets, self._sum))
        self._lock = self._sum.lock if plain else None  # one lock for the whole series
        carries = getattr(self._sum, "carries", True)  # the public fallback's views do not
        if old is not None and old_sum is not None and old_sum is not self._sum and carries:
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
                bucket.number += 1.0
                self._sum.number += value
            span = current_otel_context().get(SPAN_KEY)
            if span is not None:
                ctx = span.get_span_context()
                if ctx.trace_flags & 1:  # sampled
                    bucket.exemplar = (ctx, value, time.time())
        except Exception:
            self._misuse("bad observation", value)

    def value(self) -> float:
        """The number of observations in this process."""
        if self._read_together is not None:
            return float(sum(self._read_together(len(self._buckets))[0]))
        return float(sum(bucket.get() for bucket in self._buckets))

    def snapshot(self) -> tuple[list[float], list[float], float, list[Exemplar | None]]:
        """(upper bounds without +Inf, per-bucket counts incl. +Inf, sum, exemplars)."""
        if self._read_together is not None:
            counts, total = self._read_together(len(self._buckets))
            exemplars = [bucket.get_exemplar() for bucket in self._buckets]
            return self._bounds[:-1], counts, float(total), exemplars
        counts = [bucket.get() for bucket in self._buckets]
        exemplars = [bucket.get_exemplar() for bucket in self._buckets]
        return self._bounds[:-1], counts, float(self._sum.get()), exemplars
