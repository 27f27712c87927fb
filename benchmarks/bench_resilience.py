"""The resilience hot paths against their budgets, in the same run.

- circuit breaker, closed state: a call through ``@breaker`` (permit, two clock reads,
  the window update under the lock, the duration histogram) against the bare call, and
  against the bare call plus a 1.5 µs spin on ``perf_counter_ns``: the issue's budget
  ("at most 1.5 µs over a bare call") is a ratio of at most 1 to that spin case;
- the rate-limited root sampler's decision (``ParentBased(RateLimitedSampler)``, the
  budget held under 10x load so most roots are dropped, and kept roots build a
  tracestate) against the SDK's ``ParentBased(TraceIdRatioBased)`` at the same kept
  fraction.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final

from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from benchmarks._harness import Group
from unified_obs import resilience
from unified_obs.testing import reset
from unified_obs.tracing._rate_limited import RateLimitedSampler

SPIN_NS: Final = 1500


def noop() -> None:
    """The bare call."""


async def anoop() -> None:
    """The bare coroutine."""


async def aspin() -> None:
    """The bare coroutine plus the budget."""
    spin()


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
aprotected = resilience.breaker("bench")(anoop)


def _breaker_group() -> Group:
    return Group(
        "resilience: circuit breaker, closed state (ns per call)",
        cases={
            "bare call": noop,
            "bare call + 1.5 us spin (the budget)": spin,
            "@breaker sync": protected,
            "bare coroutine": lambda: drive(anoop),
            "bare coroutine + 1.5 us spin (the budget)": lambda: drive(aspin),
            "@breaker async": lambda: drive(aprotected),
        },
        anchor="bare call",
        budgets={"@breaker sync": 1.0, "@breaker async": 1.0},
        budget_anchors={
            "@breaker sync": "bare call + 1.5 us spin (the budget)",
            "@breaker async": "bare coroutine + 1.5 us spin (the budget)",
        },
        setup=reset,
        teardown=reset,
    )


class _Roots:
    """Trace ids arriving at 10x the rate-limited sampler's budget on a fake clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.ids = [random.Random(7).getrandbits(128) for _ in range(4096)]
        self.next = 0

    def clock(self) -> float:
        return self.now

    def trace_id(self) -> int:
        self.next = (self.next + 1) & 4095
        self.now += 0.001  # 1,000 roots/s against a budget of 100/s
        return self.ids[self.next]


_roots: Final = _Roots()
_limited: Final = ParentBased(RateLimitedSampler(100, clock=_roots.clock))
_ratio: Final = ParentBased(TraceIdRatioBased(0.1))


def _sampler_group() -> Group:
    return Group(
        "tracing: root sampling decision at 10x the budget (ns per root)",
        cases={
            "SDK ParentBased(TraceIdRatioBased(0.1))": lambda: _ratio.should_sample(
                None, _roots.trace_id(), "root"
            ),
            "ParentBased(RateLimitedSampler(100/s))": lambda: _limited.should_sample(
                None, _roots.trace_id(), "root"
            ),
        },
        anchor="SDK ParentBased(TraceIdRatioBased(0.1))",
    )


def groups() -> list[Group]:
    """The resilience and sampling groups."""
    return [_breaker_group(), _sampler_group()]
