"""The circuit breaker's state machine: closed, open, half-open (resilience4j's semantics).

Pure and clock-driven: every method takes the monotonic time ``now`` and returns what
happened; the caller (:mod:`._breaker`) measures calls, reports transitions and never
holds the lock while the protected call runs.  Every critical section here is a few
arithmetic steps.

A permit names the *phase* it was taken in (a number bumped at every transition), so an
outcome that reports after the state moved on (a slow call started while closed ends
after the breaker opened) is dropped instead of polluting the new state's counts.

The success lane: while closed with a window that holds no failed or slow call (a
healthy dependency, the common case), a fast successful call cannot trip the breaker, so
it only ticks ``lane``'s ``itertools.count`` (one C call, atomic under the GIL) instead of
taking the lock.  A time window's lane lasts one whole second (its bucket): a call that
ends after it takes the lock, which folds the lane into that second's bucket and opens
the next second's.  The ticks are folded into the window when the lane closes (a failed
or slow call arrives: the lane is closed *before* that fold) and when the window is
read; a ticker that finds ``lane`` changed after its tick folds under the lock itself
(:meth:`BreakerState.fold_late`), so no tick racing a close is lost and a window with
failures pays no fold per call.  The lane is ``(phase number, count, start, end)``
(``end`` and ``start`` infinite for a count window): a call that ticks it after its
phase ended is dropped like any outcome reported too late; one that races the change of
second is counted in the next second's bucket.
"""

from __future__ import annotations

import itertools
import math
import threading
from dataclasses import dataclass
from typing import Final, Literal

from ._policy import BreakerPolicy
from ._window import Rates

__all__ = [
    "CLOSED",
    "HALF_OPEN",
    "OPEN",
    "STATES",
    "BreakerState",
    "Lane",
    "State",
    "Transition",
]

State = Literal["closed", "open", "half_open"]
CLOSED: Final = "closed"
OPEN: Final = "open"
HALF_OPEN: Final = "half_open"
STATES: Final[tuple[State, ...]] = (CLOSED, OPEN, HALF_OPEN)
Lane = tuple[int, "itertools.count[int]", float, float]


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of state, with the counts that caused it."""

    from_state: State
    to_state: State
    rates: Rates
    retry_after: float  # seconds until trial calls are let through (0 unless opening)


class BreakerState:
    """Thread-safe state of one breaker.  ``phase`` is ``(state, phase number)``, replaced
    as a whole at each transition so a lock-free read never sees half of one."""

    def __init__(self, policy: BreakerPolicy, now: float) -> None:
        self.policy = policy
        self._minimum_calls = policy.minimum_calls
        self._failure_rate = policy.failure_rate_threshold
        self._slow_rate = policy.slow_call_rate_threshold
        self.phase: tuple[State, int] = (CLOSED, 0)
        self._lock = threading.Lock()
        self._window = policy.new_window()
        self._per_second = policy.window == "time"
        self.lane: Lane | None = None  # see the module's docstring; None: take the lock
        self._lane_start = -math.inf  # the second the lane's ticks belong to
        self._ticks: itertools.count[int] = itertools.count()
        self._folded = 0  # lane ticks already in the window
        self._reads = 0  # values of _ticks taken by _fold itself
        self._new_lane(now)
        self._opens = 0  # opens in a row since the last close (the back-off exponent)
        self._open_until = now
        self._entered = now  # when the current state began
        self._trial = _Trial()

    def acquire(self, now: float) -> tuple[int | None, Transition | None]:
        """A permit (the phase number) for one call, or ``None`` when rejected; and the
        transition a lazy open-to-half-open (or a stuck half-open) step made."""
        state, number = self.phase
        if state == CLOSED:
            return number, None
        with self._lock:
            transition = self._expire(now)
            state, number = self.phase
            if state == CLOSED:
                return number, transition
            if state == HALF_OPEN and self._trial.taken < self.policy.permitted_calls_in_half_open:
                self._trial.taken += 1
                return number, transition
            return None, transition

    def record(self, permit: int, failed: bool, slow: bool, now: float) -> Transition | None:
        """Count one finished call of phase ``permit``; the transition it caused, if any."""
        with self._lock:
            state, number = self.phase
            if permit != number:
                return None  # the state moved on while the call ran
            if state == CLOSED:
                lane = self.lane
                if lane is not None:
                    if failed or slow or not lane[2] <= now < lane[3]:
                        self.lane = None  # first: a tick racing this folds itself (fold_late)
                    self._fold()
                calls, failures, slows = self._window.add(failed, slow, now)
                if calls < self._minimum_calls or (  # _tripped, inline: -100 ns of 1.7 µs
                    failures / calls < self._failure_rate and slows / calls < self._slow_rate
                ):
                    if not (failures or slows) and self.lane is None:
                        self._open_lane(number, now)  # the window is clean again
                    return None
                return self._open(Rates(calls, failures, slows), now)
            self._trial.count(failed, slow)
            if self._trial.calls < self.policy.permitted_calls_in_half_open:
                return None
            return self._settle_trial(now)

    def fold_late(self, permit: int, now: float) -> Transition | None:
        """A success lane tick of phase ``permit`` that may have come after the lane was
        closed (the ticker saw ``lane`` change): fold it in while that phase lasts and
        judge the window as :meth:`record` would (a success can bring the window to
        ``minimum_calls``); the transition it caused, if any."""
        with self._lock:
            if self.phase != (CLOSED, permit):
                return None
            self._fold()
            rates = self._window.rates(now)
            if rates.calls >= self._minimum_calls and self._tripped(
                rates.calls, rates.failed, rates.slow
            ):
                return self._open(rates, now)
            if self.lane is None and not (rates.failed or rates.slow):
                self._open_lane(permit, now)
            return None

    def release(self, permit: int) -> None:
        """A call of phase ``permit`` ended without an outcome (ignored, cancelled): in
        half-open its permit goes back for another trial call."""
        with self._lock:
            state, number = self.phase
            if permit == number and state == HALF_OPEN and self._trial.taken > 0:
                self._trial.taken -= 1

    def current(self, now: float) -> tuple[State, Transition | None]:
        """The state at ``now`` (making any lazy transition due)."""
        with self._lock:
            transition = self._expire(now)
            return self.phase[0], transition

    def retry_after(self, now: float) -> float:
        """Seconds until an open breaker lets trial calls through (0 when not open)."""
        return max(0.0, self._open_until - now) if self.phase[0] == OPEN else 0.0

    def rates(self, now: float) -> Rates:
        """The closed-state window's counts at ``now``."""
        with self._lock:
            if self.phase[0] == CLOSED:
                self._fold()
            return self._window.rates(now)

    def _expire(self, now: float) -> Transition | None:
        state = self.phase[0]
        if state == OPEN and now >= self._open_until:
            self._trial = _Trial()
            return self._move(HALF_OPEN, Rates(0, 0, 0), now)
        stuck = self.policy.max_wait_in_half_open
        if state == HALF_OPEN and stuck and now - self._entered >= stuck:
            return self._open(self._trial.rates(), now)
        return None

    def _tripped(self, calls: int, failures: int, slows: int) -> bool:
        policy = self.policy
        return (
            failures / calls >= policy.failure_rate_threshold
            or slows / calls >= policy.slow_call_rate_threshold
        )

    def _settle_trial(self, now: float) -> Transition:
        rates = self._trial.rates()
        if self._tripped(rates.calls, rates.failed, rates.slow):
            return self._open(rates, now)
        self._opens = 0
        self._window.clear()
        transition = self._move(CLOSED, rates, now)
        self._new_lane(now)
        return transition

    def _open(self, rates: Rates, now: float) -> Transition:
        self._opens += 1
        self._open_until = now + self.policy.open_duration(self._opens)
        return self._move(OPEN, rates, now)

    def _new_lane(self, now: float) -> None:
        """A fresh success count for the closed phase just begun (the window is empty)."""
        self._ticks = itertools.count()
        self._folded = self._reads = 0
        self._open_lane(self.phase[1], now)

    def _open_lane(self, number: int, now: float) -> None:
        """Open the lane of phase ``number`` (for the second of ``now``, per second)."""
        if self._per_second:
            start = float(math.floor(now))
            self._lane_start = start
            self.lane = (number, self._ticks, start, start + 1.0)
        else:
            self.lane = (number, self._ticks, -math.inf, math.inf)

    def _fold(self) -> None:
        """Put the lane's ticks since the last fold into the window (under the lock).  The
        count is read by taking a value from it (one C call, where ``repr`` parsing costs
        ten times more), so the reads are counted and taken off."""
        ticks = next(self._ticks) - self._reads
        self._reads += 1
        if ticks != self._folded:
            self._window.add_successes(ticks - self._folded, self._lane_start)
            self._folded = ticks

    def _move(self, to_state: State, rates: Rates, now: float) -> Transition:
        from_state, number = self.phase
        self.lane = None
        self.phase = (to_state, number + 1)
        self._entered = now
        retry_after = self._open_until - now if to_state == OPEN else 0.0
        return Transition(from_state, to_state, rates, retry_after)


class _Trial:
    """The half-open state's trial calls: permits handed out, outcomes counted."""

    __slots__ = ("calls", "failed", "slow", "taken")

    def __init__(self) -> None:
        self.taken = 0
        self.calls = 0
        self.failed = 0
        self.slow = 0

    def count(self, failed: bool, slow: bool) -> None:
        self.calls += 1
        self.failed += failed
        self.slow += slow

    def rates(self) -> Rates:
        return Rates(self.calls, self.failed, self.slow)
