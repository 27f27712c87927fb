"""The rate-limited root sampler: a budget of roots per second, consistent and countable.

Driven by a fake monotonic clock and seeded randomness, so every number here is exact for
its seed; timing against a real server lives in ``test_sampling_server.py``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace._sampling_experimental._trace_state import OtelTraceState
from opentelemetry.sdk.trace.sampling import Decision, ParentBased
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from unified_obs.tracing._rate_limited import RateLimitedSampler, RootBudget
from unified_obs.tracing._threshold import (
    MAX_THRESHOLD,
    adjusted_count,
    encode_threshold,
    parse_threshold,
    randomness,
    threshold_for,
    with_threshold,
)


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _arrivals(seed: int, per_second: float, seconds: float) -> Iterator[tuple[float, int]]:
    """Poisson arrivals ``(time, 56 random bits)`` over ``seconds``."""
    rng = random.Random(seed)
    now = 0.0
    while True:
        now += rng.expovariate(per_second)
        if now >= seconds:
            return
        yield now, rng.getrandbits(56)


@pytest.mark.parametrize("seed", range(5))
def test_holds_the_budget_under_ten_times_the_load(seed: int) -> None:
    """At 10x the budget (500 roots/s for a 50/s budget), the roots kept per second after
    the first second stay within 10 % of the budget."""
    budget = RootBudget(50)
    kept = sum(
        budget.decide(bits, now)[0] and now >= 1.0 for now, bits in _arrivals(seed, 500, 6.0)
    )
    assert 0.9 * 50 * 5 <= kept <= 1.1 * 50 * 5


def test_keeps_everything_under_the_budget() -> None:
    """Traffic below the budget is kept whole, each root at threshold 0 (100 %)."""
    budget = RootBudget(100)
    decisions = [budget.decide(bits, now) for now, bits in _arrivals(1, 50, 5.0)]
    assert decisions
    assert all(kept and threshold == 0 for kept, threshold in decisions)


def test_never_exceeds_the_token_bucket() -> None:
    """Whatever the load, no interval keeps more than ``burst + rate * seconds`` roots."""
    budget = RootBudget(20, burst=20)
    kept_times = [now for now, bits in _arrivals(2, 5000, 3.0) if budget.decide(bits, now)[0]]
    for start in kept_times:
        for seconds in (0.1, 0.5, 1.0):
            inside = sum(start <= t < start + seconds for t in kept_times)
            assert inside <= 20 + 20 * seconds + 1


def test_adjusted_counts_estimate_the_true_root_count() -> None:
    """The sum over kept roots of 2**56 / (2**56 - th) estimates how many roots arrived
    within 5 %, at 20x the budget over 20 seconds."""
    budget = RootBudget(50)
    seen = 0
    estimate = 0.0
    for now, bits in _arrivals(3, 1000, 20.0):
        seen += 1
        kept, threshold = budget.decide(bits, now)
        estimate += adjusted_count(threshold) if kept else 0.0
    assert estimate == pytest.approx(seen, rel=0.05)


def test_decision_is_randomness_against_threshold() -> None:
    """A root is kept exactly when its randomness clears the threshold it was held to, so
    any service comparing the same trace id with the same threshold agrees."""
    budget = RootBudget(10)
    for now, bits in _arrivals(4, 400, 3.0):
        kept, threshold = budget.decide(bits, now)
        assert kept == (bits >= threshold)


def test_threshold_round_trips_through_the_sdk_parser() -> None:
    """``ot=th:`` as written here parses to the same threshold with the SDK's own
    (experimental) tracestate parser, and re-serialises identically."""
    for probability in (1.0, 0.5, 0.25, 0.1, 1 / 3, 0.001, 2**-40):
        threshold = threshold_for(probability)
        state = with_threshold(TraceState([("vendor", "abc")]), threshold)
        parsed = OtelTraceState.parse(state)
        assert parsed.threshold == threshold == parse_threshold(state)
        assert state.get("ot") == parsed.serialize() == "th:" + encode_threshold(threshold)
        assert state.get("vendor") == "abc"


def test_threshold_encoding_follows_the_specification() -> None:
    """Thresholds encode as the specification's examples: 100 % is ``th:0``, 50 % ``th:8``,
    25 % ``th:c``; 0 % rejects every randomness value."""
    assert encode_threshold(threshold_for(1.0)) == "0"
    assert encode_threshold(threshold_for(0.5)) == "8"
    assert encode_threshold(threshold_for(0.25)) == "c"
    assert threshold_for(0.0) == MAX_THRESHOLD


def test_randomness_prefers_rv_over_the_trace_id() -> None:
    """Randomness is the ``rv`` sub-key when present, else the trace id's low 56 bits."""
    trace_id = 0x1234_5678_9ABC_DEF0_1122_3344_5566_7788
    assert randomness(trace_id) == 0xDEF0_1122_3344_5566_7788 & (MAX_THRESHOLD - 1)
    state = TraceState([("ot", "th:8;rv:00000000000001")])
    assert randomness(trace_id, state) == 1


def test_with_threshold_keeps_other_sub_keys_and_members() -> None:
    """Setting or erasing ``th`` keeps ``rv`` and every other tracestate member."""
    state = TraceState([("vendor", "abc"), ("ot", "rv:00000000000001;th:8")])
    assert with_threshold(state, threshold_for(0.25)).get("ot") == "th:c;rv:00000000000001"
    erased = with_threshold(state, None)
    assert erased.get("ot") == "rv:00000000000001"
    assert erased.get("vendor") == "abc"


def _remote_parent(sampled: bool, state: TraceState) -> SpanContext:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    return SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=flags, trace_state=state)


def test_children_follow_the_parent_and_keep_its_tracestate() -> None:
    """Behind ``ParentBased``, a child of a sampled remote parent is sampled with the
    parent's tracestate byte for byte (``vendor=abc`` and ``ot=th:c``), even with the
    budget spent; a child of an unsampled parent is dropped."""
    clock = FakeClock()
    sampler = ParentBased(RateLimitedSampler(1, burst=1, clock=clock))
    state = TraceState([("vendor", "abc"), ("ot", "th:c")])
    for sampled, expected in ((True, Decision.RECORD_AND_SAMPLE), (False, Decision.DROP)):
        parent = set_span_in_context(NonRecordingSpan(_remote_parent(sampled, state)))
        for _ in range(5):
            result = sampler.should_sample(parent, 0xABC, "child")
            assert result.decision is expected
            if sampled:
                assert result.trace_state == state


def test_root_results_carry_the_threshold() -> None:
    """A kept root's tracestate holds ``ot=th:`` with the threshold it was decided at; a
    dropped root records nothing; the observer sees every decision."""
    clock = FakeClock()
    seen: list[tuple[bool, float]] = []
    sampler = RateLimitedSampler(5, clock=clock, on_decision=lambda *d: seen.append(d))
    results = []
    for now, bits in _arrivals(5, 1000, 2.0):
        clock.now = 100.0 + now
        results.append(sampler.should_sample(None, bits, "root"))
    kept = [r for r in results if r.decision is Decision.RECORD_AND_SAMPLE]
    assert kept
    assert len(kept) < len(results)
    for result in results:
        threshold = parse_threshold(result.trace_state)
        assert (threshold is not None) == (result.decision is Decision.RECORD_AND_SAMPLE)
    assert len(seen) == len(results)
    assert [k for k, _ in seen] == [r.decision is Decision.RECORD_AND_SAMPLE for r in results]


@pytest.mark.parametrize(("rate", "burst"), [(0, None), (-1, None), (float("inf"), None), (5, 0.5)])
def test_rejects_a_meaningless_budget(rate: float, burst: float | None) -> None:
    """A budget that is not a positive rate with a burst of at least one root is refused."""
    with pytest.raises(ValueError, match=r"rate|burst"):
        RootBudget(rate, burst)


def test_clock_going_backwards_changes_nothing() -> None:
    """A clock reading earlier than the last one counts as no time passing."""
    budget = RootBudget(10, burst=10)
    kept = [budget.decide(MAX_THRESHOLD - 1, 50.0 - i)[0] for i in range(30)]
    assert sum(kept) <= 10


def test_a_failing_observer_never_raises_into_the_app() -> None:
    """An observer that raises does not stop the decision (nor raise into span start)."""

    def broken(kept: bool, probability: float) -> None:
        raise RuntimeError("observer broke")

    sampler = RateLimitedSampler(5, on_decision=broken)
    assert sampler.should_sample(None, 1 << 55, "root").decision is Decision.RECORD_AND_SAMPLE
