"""Property-based: the breaker against a plain reference model, over random policies and
random sequences of waits and call outcomes (hypothesis).

The model keeps every outcome in a list and recomputes the window from scratch; the real
breaker keeps running totals in a ring or per-second buckets.  After every step both must
agree on whether the call was let through and on the state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from unified_obs.resilience import BreakerPolicy, CircuitBreaker, CircuitOpenError

SLOW = 1.0  # slow_call_duration in every generated policy


class Clock:
    """Monotonic seconds moved by the steps."""

    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Model:
    """resilience4j's circuit breaker, written for clarity rather than speed."""

    policy: BreakerPolicy
    now: float
    state: str = "closed"
    outcomes: list[tuple[float, bool, bool]] = field(default_factory=list)
    opens: int = 0
    open_until: float = 0.0
    entered: float = 0.0
    trial: list[tuple[bool, bool]] = field(default_factory=list)
    taken: int = 0
    phase: int = 0  # bumped at every change of state

    def move(self, state: str) -> None:
        self.state, self.entered, self.phase = state, self.now, self.phase + 1

    def window(self) -> list[tuple[float, bool, bool]]:
        size = self.policy.window_size
        if self.policy.window == "count":
            return self.outcomes[-size:]
        newest = math.floor(self.now)
        return [o for o in self.outcomes if math.floor(o[0]) > newest - size]

    def tripped(self, outcomes: list[tuple[bool, bool]], minimum: int) -> bool:
        calls = len(outcomes)
        if calls == 0 or calls < minimum:
            return False
        failed = sum(f for f, _ in outcomes) / calls
        slow = sum(s for _, s in outcomes) / calls
        policy = self.policy
        return failed >= policy.failure_rate_threshold or slow >= policy.slow_call_rate_threshold

    def expire(self) -> None:
        if self.state == "open" and self.now >= self.open_until:
            self.trial, self.taken = [], 0
            self.move("half_open")
        stuck = self.policy.max_wait_in_half_open
        if self.state == "half_open" and stuck and self.now - self.entered >= stuck:
            self.open()

    def open(self) -> None:
        self.opens += 1
        wait = self.policy.wait_in_open * self.policy.backoff_multiplier ** (self.opens - 1)
        if self.policy.max_wait_in_open is not None:
            wait = min(wait, self.policy.max_wait_in_open)
        self.open_until = self.now + wait
        self.move("open")

    def acquire(self) -> int | None:
        """The phase of the permit, or None when the call is rejected."""
        self.expire()
        if self.state == "closed":
            return self.phase
        if self.state == "half_open" and self.taken < self.policy.permitted_calls_in_half_open:
            self.taken += 1
            return self.phase
        return None

    def finish(self, phase: int, outcome: str, took: float) -> None:
        """``outcome``: ok, fail, slow_ok, slow_fail, ignored, cancelled, after ``took``
        seconds (a call that stayed open while others ran may be slow whatever it says)."""
        if phase != self.phase:
            return  # the state changed while the call ran: its outcome is not counted
        if outcome in ("ignored", "cancelled"):
            if self.state == "half_open":
                self.taken -= 1
            return
        failed, slow = outcome.endswith("fail"), took >= SLOW
        if self.state == "closed":
            self.outcomes.append((self.now, failed, slow))
            window = [(f, s) for _, f, s in self.window()]
            if self.tripped(window, self.policy.minimum_calls):
                self.open()
            return
        self.trial.append((failed, slow))
        if len(self.trial) == self.policy.permitted_calls_in_half_open:
            if self.tripped(self.trial, 1):
                self.open()
            else:
                self.opens, self.outcomes = 0, []
                self.move("closed")


policies = st.builds(
    BreakerPolicy,
    failure_rate_threshold=st.sampled_from([0.25, 0.5, 1.0]),
    slow_call_rate_threshold=st.sampled_from([0.5, 1.0]),
    slow_call_duration=st.just(SLOW),
    window=st.sampled_from(["count", "time"]),
    window_size=st.integers(1, 6),
    minimum_calls=st.integers(1, 6),
    wait_in_open=st.sampled_from([1.0, 2.5, 5.0]),
    backoff_multiplier=st.sampled_from([1.0, 2.0]),
    max_wait_in_open=st.sampled_from([None, 12.0]),
    permitted_calls_in_half_open=st.integers(1, 3),
    max_wait_in_half_open=st.sampled_from([0.0, 3.0]),
)
_CALLS = st.sampled_from(
    ["ok", "ok", "ok", "fail", "fail", "fail", "slow_ok", "slow_fail", "ignored", "cancelled"]
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("call"), _CALLS),
        st.tuples(st.just("call"), _CALLS),
        st.tuples(st.just("call"), _CALLS),
        st.tuples(st.just("wait"), st.sampled_from([0.3, 1.0, 2.5, 5.0, 13.0])),
        st.tuples(st.just("begin"), st.just("")),  # a call that stays open...
        st.tuples(st.just("end"), _CALLS),  # ...until the latest one still open ends
    ),
    max_size=80,
)


class Ignored(Exception):
    """An exception the breaker is told to ignore."""


class Cancelled(BaseException):
    """Ends a call without an outcome, like ``asyncio.CancelledError``."""


def _raised(outcome: str) -> BaseException | None:
    if outcome.endswith("fail"):
        return RuntimeError("failed")
    return {"ignored": Ignored(), "cancelled": Cancelled()}.get(outcome)


def _call(cb: CircuitBreaker, clock: Clock, outcome: str) -> bool:
    """Run one call ending in ``outcome``; whether the breaker let it through."""

    @cb
    def body() -> None:
        if outcome.startswith("slow"):
            clock.now += SLOW
        error = _raised(outcome)
        if error is not None:
            raise error

    try:
        body()
    except CircuitOpenError:
        return False
    except (RuntimeError, Ignored, Cancelled):
        pass
    return True


def _begin(cb: CircuitBreaker) -> bool:
    try:
        cb.__enter__()
    except CircuitOpenError:
        return False
    return True


def _end(cb: CircuitBreaker, clock: Clock, outcome: str) -> None:
    if outcome.startswith("slow"):
        clock.now += SLOW
    error = _raised(outcome)
    cb.__exit__(type(error) if error else None, error, None)


@settings(max_examples=500, deadline=None)
@given(policy=policies, script=steps)
def test_breaker_matches_the_reference_model(policy: BreakerPolicy, script: list[Any]) -> None:
    """For any policy and any sequence of waits, calls (ok, failed, slow, ignored,
    cancelled) and overlapping calls (begun, ended later or never, so some report after
    the state moved on), the breaker lets through exactly the calls the model does and is
    in the model's state after every step."""
    clock = Clock()
    cb = CircuitBreaker("model", policy, ignore=(Ignored,), clock=clock)
    model = Model(policy, clock.now, entered=clock.now)
    running: list[tuple[int, float]] = []  # (model phase, start) of calls not ended yet
    for kind, arg in script:
        model.now = clock.now
        if kind == "wait":
            clock.now += arg
        elif kind == "begin":
            phase = model.acquire()
            assert _begin(cb) == (phase is not None)
            if phase is not None:
                running.append((phase, clock.now))
        elif kind == "end" and running:
            _end(cb, clock, arg)
            phase, start = running.pop()
            model.now = clock.now
            model.finish(phase, arg, clock.now - start)
        elif kind == "call":
            start = clock.now
            phase = model.acquire()
            assert _call(cb, clock, arg) == (phase is not None), (kind, arg)
            if phase is not None:
                model.now = clock.now
                model.finish(phase, arg, clock.now - start)
        model.now = clock.now
        model.expire()
        assert cb.state == model.state
