"""The circuit breaker: resilience4j's states and thresholds, metrics, events, concurrency.

Time is a fake monotonic clock that tests move by hand (a call is made slow by moving
the clock inside it), so nothing here sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import unified_obs as obs
from unified_obs import metrics, resilience
from unified_obs.errors import ConfigError
from unified_obs.health import default_registry
from unified_obs.resilience import BreakerPolicy, CircuitBreaker, CircuitOpenError, breaker
from unified_obs.resilience._window import CountWindow, Rates
from unified_obs.testing import capture


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _no_breakers() -> Iterator[None]:
    resilience.reset()
    yield
    resilience.reset()


class Boom(Exception):
    """The dependency failed."""


def _make(clock: FakeClock, **policy: Any) -> CircuitBreaker:
    defaults: dict[str, Any] = {"window_size": 4, "minimum_calls": 4, "wait_in_open": 10.0}
    return CircuitBreaker("dep", BreakerPolicy(**{**defaults, **policy}), clock=clock)


def _state(cb: CircuitBreaker) -> str:
    """The breaker's state, read afresh (mypy would narrow ``cb.state`` across calls)."""
    return cb.state


def _run(cb: CircuitBreaker, clock: FakeClock, outcome: str, took: float = 0.0) -> str:
    """One call through ``cb`` that ends with ``outcome``; returns what the caller saw."""

    @cb
    def call() -> str:
        clock.now += took
        if outcome == "fail":
            raise Boom
        return "ok"

    try:
        return call()
    except Boom:
        return "failed"
    except CircuitOpenError:
        return "rejected"


def test_opens_at_the_failure_rate_once_the_window_holds_minimum_calls() -> None:
    """Below ``minimum_calls`` nothing opens; at 50 % failures over 4 calls it opens and
    rejects with ``CircuitOpenError`` naming the breaker, its state and the wait left."""
    clock = FakeClock()
    cb = _make(clock)
    assert [_run(cb, clock, o) for o in ("fail", "fail", "ok")] == ["failed", "failed", "ok"]
    assert _state(cb) == "closed"
    assert _run(cb, clock, "ok") == "ok"
    assert _state(cb) == "open"
    clock.now += 4
    with pytest.raises(CircuitOpenError) as caught:
        cb(lambda: None)()
    assert (caught.value.name, caught.value.state) == ("dep", "open")
    assert caught.value.retry_after == pytest.approx(6.0)


def test_opens_at_the_slow_call_rate_even_when_every_call_succeeds() -> None:
    """Successful calls slower than ``slow_call_duration`` open the breaker once their
    share reaches ``slow_call_rate_threshold`` (the P99-above-a-limit signal)."""
    clock = FakeClock()
    cb = _make(clock, slow_call_duration=0.4, slow_call_rate_threshold=0.75)
    for took in (0.5, 0.1, 0.5):
        assert _run(cb, clock, "ok", took) == "ok"
    assert _state(cb) == "closed"
    _run(cb, clock, "ok", 0.45)
    assert _state(cb) == "open"


def test_half_open_lets_permitted_calls_through_and_closes_on_their_success() -> None:
    """After ``wait_in_open`` the breaker is half-open: exactly the permitted number of
    trial calls go through, and when they succeed it closes with an empty window."""
    clock = FakeClock()
    cb = _make(clock, permitted_calls_in_half_open=2)
    for _ in range(4):
        _run(cb, clock, "fail")
    clock.now += 10
    assert _state(cb) == "half_open"
    with cb, cb, pytest.raises(CircuitOpenError):  # both permits are taken
        cb.__enter__()
    assert _state(cb) == "closed"
    for _ in range(3):
        _run(cb, clock, "fail")
    assert _state(cb) == "closed"  # the window started over: 3 calls < minimum_calls


def test_failed_trial_reopens_with_exponential_back_off_up_to_the_cap() -> None:
    """Each open in a row waits ``backoff_multiplier`` times longer, capped at
    ``max_wait_in_open``: 10 s, 20 s, 40 s, 50 s; a close resets the wait to 10 s."""
    clock = FakeClock()
    cb = _make(clock, backoff_multiplier=2.0, max_wait_in_open=50.0, permitted_calls_in_half_open=1)
    for _ in range(4):
        _run(cb, clock, "fail")
    waits = []
    for _ in range(4):
        waits.append(cb.retry_after)
        clock.now += waits[-1]
        assert _run(cb, clock, "fail") == "failed"  # the trial call fails
    assert waits == [10.0, 20.0, 40.0, 50.0]
    clock.now += 50.0
    assert _run(cb, clock, "ok") == "ok"
    assert _state(cb) == "closed"
    for _ in range(4):
        _run(cb, clock, "fail")
    assert cb.retry_after == 10.0


def test_time_window_forgets_calls_older_than_its_seconds() -> None:
    """With a 10-second window, failures from 10 seconds ago no longer count."""
    clock = FakeClock()
    cb = _make(clock, window="time", window_size=10, minimum_calls=4)
    for _ in range(3):
        _run(cb, clock, "fail")
    clock.now += 10
    _run(cb, clock, "fail")
    assert _state(cb) == "closed"
    assert cb._core.rates(clock.now).calls == 1


def test_ignored_exceptions_and_results_decide_failures() -> None:
    """``ignore`` exceptions count as neither; ``failed_result`` turns a returned value
    (an HTTP 503) into a failure."""
    clock = FakeClock()
    cb = CircuitBreaker(
        "dep",
        BreakerPolicy(window_size=2, minimum_calls=2),
        ignore=(KeyError,),
        failed_result=lambda status: status >= 500,
        clock=clock,
    )

    @cb
    def lookup() -> int:
        raise KeyError("absent")

    @cb
    def fetch(status: int) -> int:
        return status

    for _ in range(5):
        with pytest.raises(KeyError):
            lookup()
    assert cb._core.rates(clock.now).calls == 0
    assert fetch(503) == 503
    assert fetch(503) == 503
    assert _state(cb) == "open"


def test_cancelled_trial_call_returns_its_permit() -> None:
    """A half-open trial call cancelled mid-way (``asyncio.CancelledError``) gives its
    permit back: the next call is let through and decides."""
    clock = FakeClock()
    cb = _make(clock, permitted_calls_in_half_open=1)
    for _ in range(4):
        _run(cb, clock, "fail")
    clock.now += 10

    async def main() -> None:
        started = asyncio.Event()

        @cb
        async def hang() -> None:
            started.set()
            await asyncio.Event().wait()

        task = asyncio.ensure_future(hang())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        @cb
        async def fine() -> str:
            return "ok"

        assert await fine() == "ok"

    asyncio.run(main())
    assert _state(cb) == "closed"


def test_stuck_half_open_goes_back_to_open_after_its_maximum_wait() -> None:
    """A trial permit that never reports back does not freeze the breaker: after
    ``max_wait_in_half_open`` it opens again."""
    clock = FakeClock()
    cb = _make(clock, permitted_calls_in_half_open=1, max_wait_in_half_open=5.0)
    for _ in range(4):
        _run(cb, clock, "fail")
    clock.now += 10
    cb.__enter__()  # a trial call that never reports
    clock.now += 5
    assert _state(cb) == "open"


def test_result_of_a_call_from_an_earlier_state_is_not_counted() -> None:
    """A call let through while closed that ends after the breaker opened (and went
    half-open) does not count as a trial call."""
    clock = FakeClock()
    cb = _make(clock, permitted_calls_in_half_open=1)
    cb.__enter__()  # a long call, started while closed
    for _ in range(4):
        _run(cb, clock, "fail")
    clock.now += 10
    assert _state(cb) == "half_open"
    cb.__exit__(None, None, None)  # it succeeds late
    assert _state(cb) == "half_open"


def test_threads_are_not_serialised_by_the_breaker() -> None:
    """20 threads inside one breaker at once: each protected call waits on a barrier
    that only opens when all 20 are inside, which a lock held across calls would block."""
    cb = CircuitBreaker("dep")
    barrier = threading.Barrier(20, timeout=10)
    outcomes: list[int] = []

    @cb
    def call() -> int:
        return barrier.wait()

    threads = [threading.Thread(target=lambda: outcomes.append(call())) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == list(range(20))


def test_tasks_run_concurrently_through_the_breaker() -> None:
    """500 asyncio tasks are all inside one breaker at the same time."""
    cb = CircuitBreaker("dep")

    async def main() -> int:
        inside = 0
        everyone = asyncio.Event()

        @cb
        async def call() -> None:
            nonlocal inside
            inside += 1
            if inside == 500:
                everyone.set()
            await everyone.wait()

        async with cb:
            await asyncio.wait_for(asyncio.gather(*(call() for _ in range(500))), 10)
        return inside

    assert asyncio.run(main()) == 500


def test_metrics_count_states_transitions_calls_and_rejections() -> None:
    """The state series, the transition counter, calls by outcome (a histogram) and
    rejected calls are on /metrics."""
    clock = FakeClock()
    cb = _make(clock)
    for outcome in ("ok", "fail", "fail", "fail"):
        _run(cb, clock, outcome)
    _run(cb, clock, "ok")
    value = metrics.value
    assert value("unified_obs.circuit_breaker.state", breaker="dep", state="open") == 1
    assert value("unified_obs.circuit_breaker.state", breaker="dep", state="closed") == 0
    transitions = value(
        "unified_obs.circuit_breaker.transitions",
        breaker="dep",
        from_state="closed",
        to_state="open",
    )
    assert transitions == 1
    duration = "unified_obs.circuit_breaker.call.duration"
    assert value(duration, breaker="dep", outcome="failed") == 3
    assert value(duration, breaker="dep", outcome="successful") == 1
    assert value("unified_obs.circuit_breaker.not_permitted_calls", breaker="dep") == 1
    _, _, body = metrics.render()
    assert b"unified_obs_circuit_breaker_call_duration_seconds_bucket" in body


def test_transition_is_logged_and_marked_on_the_current_span() -> None:
    """Each transition writes one ``circuit_breaker.state_change`` log line with the
    trace id, and adds an event to the span that caused it."""
    clock = FakeClock()
    with capture() as captured:
        cb = _make(clock)
        with captured.telemetry.tracer_provider.get_tracer("t").start_as_current_span("req"):  # type: ignore[union-attr]
            for _ in range(4):
                _run(cb, clock, "fail")
        lines = [r for r in captured.logs if r.get("event") == "circuit_breaker.state_change"]
        assert len(lines) == 1
        assert lines[0]["from_state"] == "closed"
        assert lines[0]["to_state"] == "open"
        assert lines[0]["failure_rate"] == 1.0
        assert "trace_id" in lines[0]
        (event,) = captured.span("req").events
        assert event.name == "circuit_breaker.state_change"
        assert dict(event.attributes or {})["circuit_breaker.to_state"] == "open"


def test_readiness_fails_while_open() -> None:
    """``readiness=True`` adds a readiness check that fails while the breaker is open."""
    clock = FakeClock()
    cb = breaker("db", readiness=True, clock=clock, window_size=2, minimum_calls=2)
    default_registry().mark_started()
    assert default_registry().check_sync("readiness").ok
    for _ in range(2):
        _run(cb, clock, "fail")
    assert not default_registry().check_sync("readiness").ok


def test_breaker_is_one_per_name_and_options_must_agree() -> None:
    """``breaker(name)`` returns the same breaker; asking with other options raises."""
    first = breaker("payments", failure_rate_threshold=0.3)
    assert breaker("payments") is first
    assert breaker("payments", failure_rate_threshold=0.3) is first
    with pytest.raises(ConfigError, match="payments"):
        breaker("payments", failure_rate_threshold=0.6)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("failure_rate_threshold", 0),
        ("failure_rate_threshold", 1.5),
        ("slow_call_rate_threshold", float("nan")),
        ("window", "sliding"),
        ("window_size", 0),
        ("minimum_calls", 2.5),
        ("wait_in_open", -1),
        ("backoff_multiplier", 0.5),
        ("max_wait_in_open", 1.0),
        ("permitted_calls_in_half_open", True),
        ("max_wait_in_half_open", -1),
    ],
)
def test_bad_policy_raises_config_error(field: str, value: Any) -> None:
    """Every invalid knob raises ``ConfigError`` naming it, when the breaker is made."""
    with pytest.raises(ConfigError, match=field):
        breaker("x", **{field: value})


def _on_racing_threads(worker: Callable[[], None], threads: int = 8) -> None:
    """Run ``worker`` on ``threads`` threads at once, the interpreter switching threads
    every microsecond (so a check and an update of one thread often have another's in
    between); back to the usual switch interval after."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        running = [threading.Thread(target=worker) for _ in range(threads)]
        for thread in running:
            thread.start()
        for thread in running:
            thread.join()
    finally:
        sys.setswitchinterval(interval)


def test_no_outcome_is_lost_when_threads_switch_constantly() -> None:
    """8 threads x 500 calls with the interpreter switching threads every microsecond:
    the window and the metrics count all 4,000 calls and all 1,000 failures."""
    cb = CircuitBreaker("dep", BreakerPolicy(window_size=10_000, minimum_calls=10_000))

    @cb
    def call(n: int) -> None:
        if n % 4 == 0:
            raise Boom

    def worker() -> None:
        for n in range(500):
            with contextlib.suppress(Boom):
                call(n)

    _on_racing_threads(worker)
    rates = cb._core.rates(0.0)
    assert (rates.calls, rates.failed) == (4000, 1000)
    duration = "unified_obs.circuit_breaker.call.duration"
    assert metrics.value(duration, breaker="dep", outcome="failed") == 1000
    assert metrics.value(duration, breaker="dep", outcome="successful") == 3000


def test_rejected_call_is_marked_on_the_current_span() -> None:
    """A call the open breaker rejects adds a ``circuit_breaker.rejected`` event, with the
    breaker's name and state, to the span it was made in."""
    clock = FakeClock()
    with capture() as captured:
        cb = _make(clock)
        for _ in range(4):
            _run(cb, clock, "fail")
        with obs.span("request"):
            assert _run(cb, clock, "ok") == "rejected"
        (event,) = captured.span("request").events
        assert event.name == "circuit_breaker.rejected"
        assert dict(event.attributes or {}) == {
            "circuit_breaker.name": "dep",
            "circuit_breaker.state": "open",
        }


def test_default_clock_is_monotonic() -> None:
    """Without ``clock=``, time is ``time.monotonic`` (wall-clock steps move nothing)."""
    assert CircuitBreaker("dep")._clock is time.monotonic


def test_late_success_through_the_decorator_is_not_counted_in_the_next_closed_phase() -> None:
    """A decorated call let through while closed that succeeds after the breaker opened,
    went half-open and closed again is dropped: it is not counted in the new window."""
    clock = FakeClock()
    cb = _make(clock, permitted_calls_in_half_open=1)

    @cb
    def long_call() -> None:
        for _ in range(4):
            _run(cb, clock, "fail")
        clock.now += 10
        assert _run(cb, clock, "ok") == "ok"  # the trial call closes the breaker
        assert _state(cb) == "closed"

    long_call()
    assert cb._core.rates(clock.now).calls == 0


def test_healthy_successes_from_many_threads_are_all_counted() -> None:
    """8 threads x 500 successful calls (the lock-free success lane) with the interpreter
    switching threads every microsecond, then failures: the window counts every call, and
    the breaker opens exactly when the failures reach the rate over the last N calls."""
    cb = CircuitBreaker("dep", BreakerPolicy(window_size=100, minimum_calls=100))

    @cb
    def call(fail: bool) -> None:
        if fail:
            raise Boom

    def worker() -> None:
        for _ in range(500):
            call(False)

    _on_racing_threads(worker)
    assert cb._core.rates(0.0) == Rates(100, 0, 0)
    duration = "unified_obs.circuit_breaker.call.duration"
    assert metrics.value(duration, breaker="dep", outcome="successful") == 4000
    for _ in range(49):
        with contextlib.suppress(Boom):
            call(True)
    assert _state(cb) == "closed"  # 49 of the last 100 failed
    with contextlib.suppress(Boom):
        call(True)
    assert _state(cb) == "open"  # 50 of the last 100


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(1, 12),
    steps=st.lists(
        st.one_of(st.integers(0, 30), st.sampled_from(["fail", "slow", "ok"])), max_size=40
    ),
)
def test_count_window_bulk_successes_equal_one_by_one(size: int, steps: list[Any]) -> None:
    """Adding N successes at once (the fold of the success lane) leaves the ring with the
    same totals as adding them one by one, whatever the ring held before."""
    bulk, single = CountWindow(size), CountWindow(size)
    for step in steps:
        if isinstance(step, int):
            bulk.add_successes(step)
            for _ in range(step):
                single.add(False, False, 0.0)
        else:
            for window in (bulk, single):
                window.add(step == "fail", step == "slow", 0.0)
        assert bulk.rates(0.0) == single.rates(0.0)


def test_success_ticked_after_the_lane_closed_is_judged_at_once() -> None:
    """A call that read the open success lane, then ticked it after a failure closed it
    (the race the lane allows), folds its success in itself and the window is judged at
    once: here that success brings the window to ``minimum_calls`` at a 50 % failure
    rate, so the breaker opens, as it would had the two calls not raced."""
    clock = FakeClock()
    cb = _make(clock, window_size=4, minimum_calls=2, failure_rate_threshold=0.5)
    core = cb._core
    lane = core.lane
    assert lane is not None
    assert core.record(lane[0], True, False, clock.now) is None  # 1 call: below minimum
    assert core.lane is None  # the failure closed the lane
    next(lane[1])  # the racing success ticks the closed lane
    transition = core.fold_late(lane[0], clock.now)
    assert transition is not None
    assert (transition.to_state, transition.rates) == ("open", Rates(2, 1, 0))


def test_time_window_counts_every_success_from_many_threads() -> None:
    """The time window's success lane (one second at a time) under 8 threads x 500 calls
    with the interpreter switching threads every microsecond: every call is in the window,
    whatever second boundaries the run crossed."""
    cb = CircuitBreaker("dep", BreakerPolicy(window="time", window_size=600))

    @cb
    def call() -> None:
        pass

    def worker() -> None:
        for _ in range(500):
            call()

    _on_racing_threads(worker)
    assert cb._core.rates(time.monotonic()) == Rates(4000, 0, 0)


def test_time_window_lane_puts_successes_in_the_second_they_ended() -> None:
    """Successes through the time window's lane count in the second they ended: with a
    one-second window, the three calls of one second are gone the next second."""
    clock = FakeClock()
    clock.now = 1000.5
    cb = _make(clock, window="time", window_size=1, minimum_calls=1)
    for _ in range(3):
        assert _run(cb, clock, "ok") == "ok"
    clock.now = 1001.5  # nothing read the window in between: the lane is folded late
    for _ in range(2):
        assert _run(cb, clock, "ok") == "ok"
    assert cb._core.rates(clock.now) == Rates(2, 0, 0)
