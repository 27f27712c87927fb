"""A root-trace budget (traces per second, with a burst) that stays consistent and countable.

A plain token bucket (ddtrace's limiter) keeps the first requests of each second and drops
the rest: the choice depends on arrival order, so two services never agree on a trace, and
no kept trace knows what it stands for.  Here every root is decided the consistent way
(:mod:`._threshold`): kept when the trace's randomness clears a threshold, and the
threshold of the moment is written to the root's tracestate (``ot=th:``) so that
downstream services, and anything that counts spans, know its probability.

The probability follows a token bucket.  Tokens refill at ``rate`` per second up to
``burst``; each kept root spends one.  The probability of the next root is
``tokens / (arrival_rate * horizon)`` with ``horizon = burst / (4 * rate)``: with a full
bucket traffic at up to four times the budget is kept whole, under heavier traffic the
bucket settles a quarter full where ``arrival_rate * probability == rate``, and any drift
in the kept rate moves the tokens, which moves the probability back (integral feedback:
the count kept over a window is ``rate * window`` minus the change in tokens, never a sum
of independent coin tosses).  The arrival rate is an exponentially smoothed estimate over
irregular arrivals (OpenTelemetry Java contrib's ``ConsistentRateLimitingSampler``).
With fewer than one token left the probability is 0: the bucket is a hard cap, at most
``burst + rate * seconds`` roots in any interval.  The probability of each root depends
only on earlier roots, never on its own randomness, so the recorded threshold is exact
and the sum of adjusted counts estimates the true number of roots without bias.

The budget is per process: N workers (gunicorn, ``uvicorn --workers``) keep up to N times
``rate`` between them; give each worker ``rate / N`` for a service-wide budget.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

from ._threshold import MAX_THRESHOLD, randomness, threshold_for, with_threshold

__all__ = ["DecisionObserver", "RateLimitedSampler", "RootBudget"]

_log: Final = logging.getLogger("unified_obs")
DecisionObserver = Callable[[bool, float], None]
"""Called after each root decision with ``(kept, probability)``."""

ADAPTATION_SECONDS: Final = 1.0
"""Time constant of the smoothed arrival-rate estimate."""

_CACHED_STATES: Final = 4096
"""Root tracestates kept by threshold (16-bit precision: few distinct values)."""

MIN_BURST: Final = 20.0
"""The default burst for budgets under 20 roots per second: the bucket settles a quarter
full, and with fewer tokens than that the probability would jump to 0 too often."""


class RootBudget:
    """The token bucket and arrival-rate estimate behind the sampler (pure, clock-driven).

    ``decide(randomness, now)`` returns ``(kept, threshold)``; thread-safe.
    """

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if not rate > 0 or math.isinf(rate):
            raise ValueError(f"rate must be a positive number of roots per second, not {rate!r}")
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else max(self.rate, MIN_BURST)
        if not self.burst >= 1.0 or math.isinf(self.burst):
            raise ValueError(f"burst must be a finite number of roots >= 1, not {burst!r}")
        self._horizon = self.burst / (4.0 * self.rate)
        self._tokens = self.burst / 2.0  # between empty and full: no start-up transient
        self._arrivals = 0.0  # exponentially decayed count of roots seen
        self._window = 0.0  # the same decay applied to the seconds they arrived in
        self._last: float | None = None
        self._lock = threading.Lock()

    def decide(self, randomness: int, now: float) -> tuple[bool, int]:
        """Whether the root with ``randomness`` is kept, and the threshold it was held to."""
        with self._lock:
            self._advance(now)
            threshold = self._threshold()
            kept = randomness >= threshold
            if kept:
                self._tokens -= 1.0
        return kept, threshold

    def probability(self) -> float:
        """The probability the next root would get if it arrived at the last decision's time."""
        with self._lock:
            return (MAX_THRESHOLD - self._threshold()) / MAX_THRESHOLD

    def _advance(self, now: float) -> None:
        elapsed = 0.0 if self._last is None else max(0.0, now - self._last)
        self._last = now if self._last is None else max(self._last, now)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        decay = math.exp(-elapsed / ADAPTATION_SECONDS)
        self._arrivals = self._arrivals * decay + 1.0
        self._window = self._window * decay + elapsed

    def _threshold(self) -> int:
        if self._tokens < 1.0:
            return MAX_THRESHOLD
        if self._window <= 0.0:
            return 0
        expected = self._arrivals / self._window * self._horizon  # roots in one horizon
        return threshold_for(self._tokens / expected) if self._tokens < expected else 0


class RateLimitedSampler(Sampler):
    """Keeps up to ``rate`` root traces per second (bursts up to ``burst``), each with a
    consistent decision and its ``ot=th:`` threshold.  Meant as the root sampler of
    ``ParentBased`` (children follow their parent); ``clock`` is monotonic seconds."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_decision: DecisionObserver | None = None,
    ) -> None:
        self.budget = RootBudget(rate, burst)
        self._clock = clock
        self.on_decision = on_decision
        self._root_states: dict[int, TraceState] = {}

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        """Decide one root span from its trace id's randomness and the budget."""
        kept, threshold = self.budget.decide(randomness(trace_id, trace_state), self._clock())
        observe = self.on_decision
        if observe is not None:
            try:
                observe(kept, (MAX_THRESHOLD - threshold) / MAX_THRESHOLD)
            except Exception:  # starting a span never raises into the app
                _log.warning("unified_obs: sampling observer failed", exc_info=True)
        if not kept:
            return SamplingResult(Decision.DROP, None, trace_state)
        return SamplingResult(
            Decision.RECORD_AND_SAMPLE, attributes, self._state(trace_state, threshold)
        )

    def _state(self, trace_state: TraceState | None, threshold: int) -> TraceState:
        """``trace_state`` with ``ot=th:``; for a root without one, from a small cache
        (building a ``TraceState`` validates it: 3 µs of a 5.8 µs kept root, measured)."""
        if trace_state:
            return with_threshold(trace_state, threshold)
        cache = self._root_states
        state = cache.get(threshold)
        if state is None:
            if len(cache) >= _CACHED_STATES:
                cache.clear()
            state = cache[threshold] = with_threshold(None, threshold)
        return state

    def get_description(self) -> str:
        budget = self.budget
        return f"RateLimited{{{budget.rate:g}/s,burst={budget.burst:g}}}"
