"""``traces_sampler="parentbased_ratelimited"``: its setting, its argument, and its spans."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.sampling import ParentBased

import unified_obs as obs
from unified_obs.config import Settings
from unified_obs.errors import ConfigError
from unified_obs.testing import capture
from unified_obs.tracing import build_sampler
from unified_obs.tracing._rate_limited import RateLimitedSampler
from unified_obs.tracing._threshold import parse_threshold


def test_rate_limited_sampler_defaults_to_100_roots_per_second() -> None:
    """Named without an argument, the budget is 100 root traces per second."""
    settings = Settings.from_env({"OTEL_TRACES_SAMPLER": "parentbased_ratelimited"})
    assert settings.traces_sampler_arg == 100.0
    sampler = build_sampler(settings.traces_sampler, settings.traces_sampler_arg)
    assert isinstance(sampler, ParentBased)
    assert "RateLimited{100/s" in str(sampler.get_description())  # type: ignore[no-untyped-call]


def test_rate_limited_sampler_takes_roots_per_second_from_the_environment() -> None:
    """``OTEL_TRACES_SAMPLER_ARG`` is the budget in roots per second, above 1 too."""
    settings = Settings.from_env(
        {"OTEL_TRACES_SAMPLER": "parentbased_ratelimited", "OTEL_TRACES_SAMPLER_ARG": "250"}
    )
    assert settings.traces_sampler_arg == 250.0


def test_ratio_above_one_is_refused_for_ratio_samplers() -> None:
    """A ratio sampler still takes only 0..1: in code a ``ConfigError``, from the
    environment one warning and the default ratio."""
    with pytest.raises(ConfigError, match="traces_sampler_arg"):
        Settings.from_env({}, traces_sampler="parentbased_traceidratio", traces_sampler_arg=5)
    with pytest.warns(RuntimeWarning, match="OTEL_TRACES_SAMPLER_ARG"):
        settings = Settings.from_env(
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "5"}
        )
    assert settings.traces_sampler_arg == 1.0


def test_zero_budget_is_refused() -> None:
    """A budget of 0 roots per second raises in code and warns from the environment."""
    with pytest.raises(ConfigError, match="per second"):
        Settings.from_env({}, traces_sampler="parentbased_ratelimited", traces_sampler_arg=0)
    with pytest.warns(RuntimeWarning, match="per second"):
        settings = Settings.from_env(
            {"OTEL_TRACES_SAMPLER": "parentbased_ratelimited", "OTEL_TRACES_SAMPLER_ARG": "0"}
        )
    assert settings.traces_sampler_arg == 100.0


def test_setup_keeps_at_most_the_burst_and_marks_kept_traces() -> None:
    """Through ``setup()``: 500 root spans in a burst keep at most the bucket's burst;
    every kept root and its children carry the root's ``ot=th:``, and children of a
    dropped root are dropped."""
    with capture(traces_sampler="parentbased_ratelimited", traces_sampler_arg=5) as captured:
        for _ in range(500):
            with obs.span("root"), obs.span("child"):
                pass
        roots = [s for s in captured.spans if s.name == "root"]
        children = [s for s in captured.spans if s.name == "child"]
    assert 1 <= len(roots) <= 20 + 5  # the burst, plus what refilled while the loop ran
    assert len(children) == len(roots)
    by_trace = {s.context.trace_id: s for s in roots}
    for child in children:
        root = by_trace[child.context.trace_id]
        assert parse_threshold(root.context.trace_state) is not None
        assert child.context.trace_state == root.context.trace_state


def test_decision_observer_sees_every_root() -> None:
    """``build_sampler``'s ``on_root_decision`` hears each root decision with its
    probability (what the sampling metrics count)."""
    seen: list[tuple[bool, float]] = []
    sampler = build_sampler(
        "parentbased_ratelimited", 10, on_root_decision=lambda *d: seen.append(d)
    )
    for trace_id in range(1, 101):
        sampler.should_sample(None, trace_id << 64 | trace_id * 7919, "root")
    assert len(seen) == 100
    assert all(0.0 <= p <= 1.0 for _, p in seen)
    assert isinstance(getattr(sampler, "_root", None), RateLimitedSampler)


def test_decisions_are_counted_with_the_budget_and_probability() -> None:
    """``unified_obs.trace.sampling.decisions{decision}`` adds up to the roots started,
    the probability gauge holds the latest root's, and the limit gauge the budget."""
    with capture(traces_sampler="parentbased_ratelimited", traces_sampler_arg=5) as captured:
        for _ in range(300):
            with obs.span("root"), obs.span("child"):
                pass
        kept = captured.metric("unified_obs.trace.sampling.decisions", decision="sampled")
        dropped = captured.metric("unified_obs.trace.sampling.decisions", decision="dropped")
        assert kept == len([s for s in captured.spans if s.name == "root"])
        assert (kept or 0) + (dropped or 0) == 300
        assert captured.metric("unified_obs.trace.sampling.limit") == 5
        probability = captured.metric("unified_obs.trace.sampling.probability")
        assert probability is not None
        assert 0.0 <= probability < 1.0
