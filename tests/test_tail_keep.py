"""Keeping failed and slow requests the head sampler dropped (``traces_keep_errors``,
``traces_keep_slower_than``): recorded unsampled, decided at their end."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

import unified_obs as obs
from unified_obs.testing import capture
from unified_obs.tracing import keeping
from unified_obs.tracing._tail_keep import PROMOTED_REASON, PromotingProcessor

DROP_ALL: dict[str, Any] = {"traces_sampler": "parentbased_traceidratio", "traces_sampler_arg": 0}


def _tracer() -> trace.Tracer:
    return trace.get_tracer_provider().get_tracer("test")


@contextmanager
def kept(**options: Any) -> Iterator[InMemorySpanExporter]:
    """``setup()`` dropping every root at the head with ``options``; the exporter gets
    what a batch processor would (its processor wrapped as ``setup()`` wraps the batch)."""
    tel = obs.setup(
        environ={},
        service_name="s",
        traces_exporter="none",
        logs_exporter="none",
        metrics_exporter="none",
        **DROP_ALL,
        **options,
    )
    exporter = InMemorySpanExporter()
    assert tel.tracer_provider is not None
    tel.tracer_provider.add_span_processor(keeping(tel.settings, SimpleSpanProcessor(exporter)))
    yield exporter


def _names(exporter: InMemorySpanExporter) -> list[str]:
    return [span.name for span in exporter.get_finished_spans()]


def _only(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


def test_failed_root_is_kept_though_the_head_sampler_dropped_it() -> None:
    """At a 0 % head ratio, a root span that ends in error is exported with
    ``sampling.promoted_reason=error``; a root that succeeds, and the children of both,
    are not."""
    with kept(traces_keep_errors=True) as exporter:
        with pytest.raises(RuntimeError):
            _fail_in_a_span()
        with obs.span("fine"), obs.span("child"):
            pass
        assert _names(exporter) == ["failing"]
        span = _only(exporter, "failing")
        assert span.context.trace_flags.sampled
        assert dict(span.attributes or {})[PROMOTED_REASON] == "error"


def _fail_in_a_span() -> None:
    with obs.span("failing"):
        with obs.span("child"):
            pass
        raise_boom()


def raise_boom() -> None:
    raise RuntimeError("boom")


def test_slow_root_is_kept_past_the_latency_threshold() -> None:
    """With ``traces_keep_slower_than=0.5``, a dropped root that lasted 0.7 s is kept
    (reason ``latency``) and one that lasted 0.3 s is not."""
    with kept(traces_keep_slower_than=0.5) as exporter:
        for name, seconds in (("slow", 0.7), ("quick", 0.3)):
            span = _tracer().start_span(name, start_time=1_000_000_000)
            span.end(end_time=1_000_000_000 + int(seconds * 1e9))
        assert _names(exporter) == ["slow"]
        assert dict(_only(exporter, "slow").attributes or {})[PROMOTED_REASON] == "latency"


def test_nothing_is_kept_unless_asked() -> None:
    """Without ``traces_keep_*`` a dropped root that fails stays dropped (and is not
    even recorded)."""
    with capture(**DROP_ALL) as captured:
        with pytest.raises(RuntimeError):
            _fail_in_a_span()
        with obs.span("failing") as span:
            assert not span.is_recording()
        assert captured.spans == ()


def test_unsampled_remote_parent_child_is_kept_on_error_with_its_tracestate() -> None:
    """A server span under a remote parent that was not sampled is kept when it fails;
    it keeps the parent's vendor tracestate but no ``ot`` threshold (a promoted span is not
    a probability sample)."""
    state = TraceState([("vendor", "abc"), ("ot", "th:8")])
    parent = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(0), trace_state=state)
    with kept(traces_keep_errors=True) as exporter:
        span = _tracer().start_span("server", context=set_span_in_context(NonRecordingSpan(parent)))
        span.set_status(Status(StatusCode.ERROR))
        span.end()
        server = _only(exporter, "server")
        assert server.context.trace_state.get("vendor") == "abc"
        assert "ot" not in server.context.trace_state
        assert server.parent is not None
        assert server.parent.span_id == 0xDEF


def test_promotions_are_capped_per_second() -> None:
    """At most ``per_second`` dropped spans are kept per second; the rest are counted as
    ``capped``."""
    exporter = InMemorySpanExporter()
    now = [0.0]
    reasons: list[str] = []
    processor = PromotingProcessor(
        SimpleSpanProcessor(exporter),
        keep_errors=True,
        slower_than=None,
        per_second=5,
        clock=lambda: now[0],
        on_promote=reasons.append,
    )
    spans = [_failed_span(n) for n in range(20)]
    for span in spans[:10]:
        processor.on_end(span)
    now[0] = 1.0
    for span in spans[10:]:
        processor.on_end(span)
    assert len(exporter.get_finished_spans()) == 10
    assert reasons.count("capped") == 10


def _failed_span(n: int) -> ReadableSpan:
    context = SpanContext(n + 1, n + 1, is_remote=False, trace_flags=TraceFlags(0))
    return ReadableSpan(name=f"s{n}", context=context, status=Status(StatusCode.ERROR))


def test_a_failing_promotion_never_raises_into_the_app() -> None:
    """If keeping a dropped span fails (here the observer raises), ending the span does
    not raise; the failure is logged."""

    def broken(reason: str) -> None:
        raise RuntimeError("observer broke")

    processor = PromotingProcessor(
        SimpleSpanProcessor(InMemorySpanExporter()),
        keep_errors=True,
        slower_than=None,
        on_promote=broken,
    )
    processor.on_end(_failed_span(1))
