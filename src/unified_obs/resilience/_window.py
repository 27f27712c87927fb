"""Sliding windows of call outcomes: the last N calls, or the calls of the last N seconds.

Both keep running totals, so adding an outcome and reading the rates cost O(1) (the
time-based window also drops whole expired seconds, O(1) amortised).  Not thread-safe on
their own: the breaker updates them under its lock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Protocol

__all__ = ["CountWindow", "Rates", "TimeWindow", "Window"]


@dataclass(frozen=True, slots=True)
class Rates:
    """What a window holds: calls, and the shares of them that failed or were slow."""

    calls: int
    failed: int
    slow: int

    @property
    def failure_rate(self) -> float:
        """Failed calls over all calls (0 when empty)."""
        return self.failed / self.calls if self.calls else 0.0

    @property
    def slow_call_rate(self) -> float:
        """Slow calls over all calls (0 when empty)."""
        return self.slow / self.calls if self.calls else 0.0


class Window(Protocol):
    """Records outcomes and reports the totals still inside the window."""

    def add(self, failed: bool, slow: bool, now: float) -> tuple[int, int, int]:
        """Record one call's outcome at monotonic time ``now``; the window's
        ``(calls, failed, slow)`` after it."""

    def rates(self, now: float) -> Rates:
        """The totals of the calls still inside the window at ``now``."""

    def add_successes(self, count: int, second: float) -> None:
        """Record ``count`` fast successful calls of the second ``second`` at once."""

    def clear(self) -> None:
        """Forget every call."""


class CountWindow:
    """The last ``size`` calls (resilience4j's ``COUNT_BASED``): a ring of outcome codes."""

    _codes: list[int]
    _next: int
    _calls: int
    _failed: int
    _slow: int

    def __init__(self, size: int) -> None:
        self._size = size
        self.clear()

    def add(self, failed: bool, slow: bool, now: float) -> tuple[int, int, int]:
        """Record one outcome, evicting the oldest once the ring is full."""
        at = self._next
        self._next = at + 1 if at + 1 < self._size else 0
        old = self._codes[at]
        self._codes[at] = failed + 2 * slow + 4  # bit 0: failed, bit 1: slow, 4: taken
        if old:
            failures = self._failed = self._failed - (old & 1) + failed
            slows = self._slow = self._slow - (old >> 1 & 1) + slow
            return self._calls, failures, slows
        self._calls += 1
        self._failed += failed
        self._slow += slow
        return self._calls, self._failed, self._slow

    def add_successes(self, count: int, second: float = 0.0) -> None:
        """Record ``count`` fast successful calls at once (the breaker's success lane):
        O(1) while the ring holds no failed or slow call, else at most ``size`` steps."""
        size = self._size
        if count >= size or not (self._failed or self._slow):
            self._fill_successes(count)
            return
        for _ in range(count):
            self.add(False, False, 0.0)

    def _fill_successes(self, count: int) -> None:
        # Either every slot is overwritten, or the ring holds only successes: the filled
        # slots are 0..calls-1 until the ring first wraps (it fills in order from 0).
        size, calls = self._size, self._calls
        if count >= size or calls + count >= size:
            self._codes = [4] * size
            self._failed = self._slow = 0
        else:
            self._codes[calls : calls + count] = [4] * count
        self._next = (self._next + count) % size
        self._calls = min(size, calls + count)

    def rates(self, now: float) -> Rates:
        """The totals over the ring."""
        return Rates(self._calls, self._failed, self._slow)

    def clear(self) -> None:
        """Empty the ring."""
        self._codes = [0] * self._size  # 0: empty slot
        self._next = 0
        self._calls = 0
        self._failed = 0
        self._slow = 0


class TimeWindow:
    """The calls of the last ``seconds`` whole seconds (resilience4j's ``TIME_BASED``):
    one bucket per second, oldest first, dropped as time moves on."""

    _buckets: deque[list[int]]
    _calls: int
    _failed: int
    _slow: int

    def __init__(self, seconds: int) -> None:
        self._seconds = seconds
        self.clear()

    def add(self, failed: bool, slow: bool, now: float) -> tuple[int, int, int]:
        """Record one outcome in the bucket of the second ``now`` falls in."""
        second = math.floor(now)
        self._expire(second)
        buckets = self._buckets
        if not buckets or buckets[-1][0] < second:
            buckets.append([second, 0, 0, 0])
        bucket = buckets[-1]  # a clock that went back counts in the newest bucket
        bucket[1] += 1
        bucket[2] += failed
        bucket[3] += slow
        self._calls += 1
        self._failed += failed
        self._slow += slow
        return self._calls, self._failed, self._slow

    def add_successes(self, count: int, second: float) -> None:
        """Record ``count`` fast successful calls of ``second`` (a whole second; one older
        than the newest bucket counts in that bucket, like a clock that went back)."""
        buckets = self._buckets
        if not buckets or buckets[-1][0] < second:
            buckets.append([int(second), 0, 0, 0])
        buckets[-1][1] += count
        self._calls += count

    def rates(self, now: float) -> Rates:
        """The totals of the buckets of the last ``seconds`` seconds."""
        self._expire(math.floor(now))
        return Rates(self._calls, self._failed, self._slow)

    def clear(self) -> None:
        """Drop every bucket."""
        self._buckets = deque()  # [second, calls, failed, slow]
        self._calls = 0
        self._failed = 0
        self._slow = 0

    def _expire(self, second: int) -> None:
        oldest = second - self._seconds + 1
        buckets = self._buckets
        while buckets and buckets[0][0] < oldest:
            _, calls, failed, slow = buckets.popleft()
            self._calls -= calls
            self._failed -= failed
            self._slow -= slow
