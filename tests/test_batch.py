"""LeanBatchSpanProcessor: the SDK's batch processor, queueing lean spans more cheaply."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, Sampler, SamplingResult

import unified_obs
import unified_obs._compat.opentelemetry_batch
from tests.otel_release import SDK
from unified_obs._compat.opentelemetry_tracer import (
    LeanSpan,
    LeanTracerProvider,
    lean_spans_supported,
)
from unified_obs.tracing import ClosableSampler, LeanBatchSpanProcessor


class _RecordOnly(Sampler):
    """Records spans without sampling them (their trace flags say unsampled)."""

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return SamplingResult(Decision.RECORD_ONLY)

    def get_description(self) -> str:
        return "record-only"


class _Held(SpanExporter):
    """Blocks in its first export until released, so the queue behind it fills up."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.names: list[str] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.release.wait(10)
        self.names.extend(span.name for span in spans)
        return SpanExportResult.SUCCESS


@pytest.fixture
def providers() -> Iterator[list[TracerProvider]]:
    """Providers a test builds, shut down after it."""
    built: list[TracerProvider] = []
    yield built
    for provider in built:
        provider.shutdown()


def _provider(
    providers: list[TracerProvider],
    exporter: SpanExporter,
    *,
    sampler: Sampler | None = None,
    lean: bool = True,
    **batch: Any,
) -> tuple[TracerProvider, LeanBatchSpanProcessor]:
    cls = LeanTracerProvider if lean else TracerProvider
    provider = cls(sampler=sampler or ClosableSampler(ALWAYS_ON), shutdown_on_exit=False)
    processor = LeanBatchSpanProcessor(exporter, **batch)
    provider.add_span_processor(processor)
    providers.append(provider)
    return provider, processor


def _names(exporter: InMemorySpanExporter) -> list[str]:
    return [span.name for span in exporter.get_finished_spans()]


@pytest.mark.skipif(not lean_spans_supported(), reason="no lean spans on the installed SDK")
def test_sampled_lean_spans_are_queued_without_asking_the_process_id(
    providers: list[TracerProvider], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ending a sampled lean span makes no getpid call (the SDK's emit makes one per
    span), and every span still reaches the exporter in order."""
    exporter = InMemorySpanExporter()
    provider, _ = _provider(providers, exporter)
    tracer = provider.get_tracer("t")
    calls: list[int] = []
    real = os.getpid

    def counting() -> int:
        calls.append(1)
        return real()

    monkeypatch.setattr(os, "getpid", counting)
    for n in range(10):
        span = tracer.start_span(f"op{n}")
        assert type(span) is LeanSpan
        span.end()
    monkeypatch.undo()
    assert calls == []
    assert provider.force_flush(5000)
    assert _names(exporter) == [f"op{n}" for n in range(10)]


def test_unsampled_spans_are_not_exported(providers: list[TracerProvider]) -> None:
    """A recorded but unsampled lean span ends without reaching the exporter."""
    exporter = InMemorySpanExporter()
    provider, _ = _provider(providers, exporter, sampler=_RecordOnly())
    span = provider.get_tracer("t").start_span("quiet")
    assert span.is_recording()
    span.end()
    assert provider.force_flush(5000)
    assert _names(exporter) == []


def test_a_full_queue_drops_with_the_sdk_warning(
    providers: list[TracerProvider], caplog: pytest.LogCaptureFixture
) -> None:
    """With the exporter busy and the queue full, the next span takes the SDK's own path:
    its warning, and the oldest queued span makes room (the SDK's deque drops it)."""
    exporter = _Held()
    provider, _ = _provider(
        providers, exporter, max_queue_size=2, max_export_batch_size=1, schedule_delay_millis=60_000
    )
    tracer = provider.get_tracer("t")
    tracer.start_span("first").end()  # wakes the worker, which blocks exporting it
    assert exporter.entered.wait(10)
    with caplog.at_level(logging.WARNING):
        # the SDK's duplicate filter shows a repeat of its last record only in a new 20 s
        # window: another record first, as an earlier test may have filled a queue
        logging.getLogger("opentelemetry.sdk._shared_internal").warning("test_batch")
        for name in ("oldest", "third", "newest"):
            tracer.start_span(name).end()
    exporter.release.set()
    assert provider.force_flush(5000)
    assert exporter.names == ["first", "third", "newest"]
    warned = any("Queue full" in r.getMessage() for r in caplog.records)
    assert warned or SDK < (1, 41)  # 1.39 and 1.40 drop without a warning


def test_spans_after_shutdown_are_dropped(providers: list[TracerProvider]) -> None:
    """After shutdown the SDK's path ignores spans: nothing is exported, nothing raises."""
    exporter = InMemorySpanExporter()
    provider, _ = _provider(providers, exporter)
    tracer = provider.get_tracer("t")
    provider.shutdown()
    tracer.start_span("late").end()
    assert _names(exporter) == []


def test_sdk_spans_take_the_sdk_path(providers: list[TracerProvider]) -> None:
    """Spans from the SDK's own tracer are queued by the SDK's on_end, unchanged."""
    exporter = InMemorySpanExporter()
    provider, _ = _provider(providers, exporter, lean=False)
    span = provider.get_tracer("t").start_span("stock")
    assert type(span) is not LeanSpan
    span.end()
    assert provider.force_flush(5000)
    assert _names(exporter) == ["stock"]


def test_an_sdk_without_the_known_fields_keeps_its_own_path(
    providers: list[TracerProvider], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the SDK's batch queue lacks a field the fast path reads, the processor uses
    the SDK's on_end for every span, and spans are still exported."""
    monkeypatch.setattr(unified_obs._compat.opentelemetry_batch, "_FIELDS", ("_no_such_field",))
    exporter = InMemorySpanExporter()
    provider, processor = _provider(providers, exporter)
    assert processor._batch is None
    provider.get_tracer("t").start_span("kept").end()
    assert provider.force_flush(5000)
    assert _names(exporter) == ["kept"]


def test_a_forked_child_queues_and_exports_its_own_spans(
    providers: list[TracerProvider],
) -> None:
    """In a forked child the processor's process id is the child's again (the SDK's
    reset and ours), so its spans take the fast path and its own worker exports them."""
    exporter = InMemorySpanExporter()
    provider, processor = _provider(providers, exporter)
    tracer = provider.get_tracer("t")
    tracer.start_span("parent").end()
    pid = os.fork()
    if pid == 0:  # child: report through the exit status only
        try:
            exporter.clear()
            tracer.start_span("child").end()
            ok = (
                processor._batch is not None
                and unified_obs._compat.opentelemetry_batch._pid == os.getpid()
            )
            ok = ok and provider.force_flush(5000) and _names(exporter) == ["child"]
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert provider.force_flush(5000)
    assert _names(exporter) == ["parent"]


def test_setup_exports_through_the_lean_processor() -> None:
    """setup() with an exporter puts a LeanBatchSpanProcessor in front of it."""
    telemetry = unified_obs.setup(
        environ={},
        service_name="svc",
        traces_exporter="console",
        metrics_exporter="none",
        logs_exporter="none",
        handle_signals=False,
    )
    provider = telemetry.tracer_provider
    assert provider is not None
    kinds = [type(p) for p in provider._active_span_processor._span_processors]
    assert kinds == [LeanBatchSpanProcessor]
