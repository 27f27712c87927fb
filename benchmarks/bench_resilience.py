"""The circuit breaker's hot path against its budget, in the same run.

Closed state: a call through ``@breaker`` (the phase read, two clock reads, the
duration histogram, and the lock-free tick of the success lane, as the window holds no
failure, in a count or a time window; with a failure in the window the outcome goes
through the lock: that case is shown without a budget) against the bare call, and against the
bare call plus a 1.5 µs spin on ``perf_counter_ns``: the issue's budget ("at most 1.5 µs
over a bare call") is a ratio of at most 1 to that spin case (the async case against the
bare coroutine plus the same spin; the pass-through wrapper case shows what the second
coroutine that any async decorator adds costs on its own).  The sampling hot paths are in
``bench_sampling.py``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final

from benchmarks._harness import Group
from unified_obs import resilience
from unified_obs.resilience import faults
from unified_obs.testing import reset

SPIN_NS: Final = 1500


def noop() -> None:
    """The bare call."""


async def anoop() -> None:
    """The bare coroutine."""


async def aspin() -> None:
    """The bare coroutine plus the budget."""
    spin()


async def awrapped_spin() -> None:
    """The budget inside the second coroutine every async wrapper adds."""
    await aspin()


def spin() -> None:
    """The bare call plus the budget: 1.5 µs of busy waiting."""
    end = time.perf_counter_ns() + SPIN_NS
    while time.perf_counter_ns() < end:
        pass


def drive(make: Callable[[], Coroutine[Any, Any, Any]]) -> None:
    """Run a coroutine that never suspends to completion, without an event loop."""
    coroutine = make()
    try:
        coroutine.send(None)
    except StopIteration:
        return
    raise RuntimeError("the benchmark coroutine suspended")


protected = resilience.breaker("bench")(noop)
timed_window = resilience.CircuitBreaker(
    "bench-time", resilience.BreakerPolicy(window="time", window_size=10)
)(noop)
# a window too long to forget its one failure during the run: every call takes the lock
degraded_breaker = resilience.CircuitBreaker(
    "bench-degraded", resilience.BreakerPolicy(window_size=5_000_000, failure_rate_threshold=0.9)
)
degraded = degraded_breaker(noop)


def _fail_once() -> None:
    """Put one failure into the degraded breaker's window."""

    @degraded_breaker
    def fail() -> None:
        raise RuntimeError("the dependency failed")

    with contextlib.suppress(RuntimeError):
        fail()


def _breaker_setup() -> None:
    reset()
    _fail_once()


fault_point = faults.point("bench")(noop)
aprotected = resilience.breaker("bench")(anoop)


def _breaker_group() -> Group:
    return Group(
        "resilience: circuit breaker, closed state (ns per call)",
        cases={
            "bare call": noop,
            "bare call + 1.5 us spin (the budget)": spin,
            "@breaker sync": protected,
            "@breaker sync, a failure in the window (locked path)": degraded,
            "@breaker sync, time window": timed_window,
            "bare coroutine": lambda: drive(anoop),
            "bare coroutine + 1.5 us spin (the budget)": lambda: drive(aspin),
            "pass-through async wrapper + 1.5 us spin": lambda: drive(awrapped_spin),
            "@breaker async": lambda: drive(aprotected),
        },
        anchor="bare call",
        budgets={"@breaker sync": 1.0, "@breaker sync, time window": 1.0, "@breaker async": 1.0},
        budget_anchors={
            "@breaker sync": "bare call + 1.5 us spin (the budget)",
            "@breaker sync, a failure in the window (locked path)": (
                "bare call + 1.5 us spin (the budget)"
            ),
            "@breaker sync, time window": "bare call + 1.5 us spin (the budget)",
            "@breaker async": "bare coroutine + 1.5 us spin (the budget)",
        },
        interval=True,
        setup=_breaker_setup,
        teardown=reset,
    )


def _arm_without_matching_rules() -> None:
    reset()
    faults.configure(faults.FaultRule(kind="abort", percentage=100, targets=("elsewhere",)))
    faults.arm(True)


def _fault_group() -> Group:
    return Group(
        "resilience: a fault point with no fault to inject (ns per call)",
        cases={
            "bare call": noop,
            "@faults.point, process not armed": fault_point,
        },
        anchor="bare call",
        setup=reset,
        teardown=reset,
    )


def _armed_fault_group() -> Group:
    return Group(
        "resilience: a fault point, armed, no rule for it (ns per call)",
        cases={"bare call": noop, "@faults.point, armed, no match": fault_point},
        anchor="bare call",
        setup=_arm_without_matching_rules,
        teardown=reset,
    )


def groups() -> list[Group]:
    """The circuit breaker and fault point groups."""
    return [_breaker_group(), _fault_group(), _armed_fault_group()]
