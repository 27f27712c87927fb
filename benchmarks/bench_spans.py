"""A span: unified_obs's tracer provider against a raw SDK provider, same batch processor.

Both providers get a batch processor (SDK defaults) around an exporter that drops every
batch -- ours the ``LeanBatchSpanProcessor`` ``setup()`` installs, the raw one the SDK's
-- so each span pays what it pays in production up to the export. The raw provider is a
stock ``TracerProvider()`` (default sampler and limits); ours is the one ``setup()``
builds (ParentBased always-on behind the closable sampler, finite attribute limits).
Cases: an empty ``start_as_current_span`` block, and one with 3 attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import unified_obs as obs
from benchmarks._harness import Group
from unified_obs.testing import reset
from unified_obs.tracing import LeanBatchSpanProcessor


class DropExporter(SpanExporter):
    """Accepts every batch and keeps nothing."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Drop ``spans``."""
        return SpanExportResult.SUCCESS


class _State:
    ours: trace.Tracer = trace.NoOpTracer()
    raw: trace.Tracer = trace.NoOpTracer()
    raw_provider: TracerProvider | None = None


def _setup() -> None:
    tel = obs.setup(
        environ={}, service_name="bench", handle_signals=False, metrics_exporter="none",
        log_format="json",
    )  # fmt: skip
    assert tel.tracer_provider is not None
    tel.tracer_provider.add_span_processor(LeanBatchSpanProcessor(DropExporter()))
    _State.ours = tel.tracer_provider.get_tracer("bench")
    raw = TracerProvider(shutdown_on_exit=False)
    raw.add_span_processor(BatchSpanProcessor(DropExporter()))
    _State.raw_provider, _State.raw = raw, raw.get_tracer("bench")


def _teardown() -> None:
    if _State.raw_provider is not None:
        _State.raw_provider.shutdown()
    reset()


def _span(tracer_of: Any, attributes: bool) -> Any:
    def run() -> None:
        with tracer_of().start_as_current_span("op") as span:
            if attributes:
                span.set_attribute("order.id", 42)
                span.set_attribute("order.channel", "web")
                span.set_attribute("order.total", 12.5)

    return run


def groups() -> list[Group]:
    """The span group."""
    return [
        Group(
            title="Span: start_as_current_span + end, batch processor, dropping exporter",
            cases={
                "unified_obs provider": _span(lambda: _State.ours, False),
                "raw SDK provider": _span(lambda: _State.raw, False),
                "unified_obs provider, 3 attributes": _span(lambda: _State.ours, True),
                "raw SDK provider, 3 attributes": _span(lambda: _State.raw, True),
            },
            anchor="raw SDK provider",
            budgets={
                "unified_obs provider": 1.1,
                "unified_obs provider, 3 attributes": 1.1,
            },
            budget_anchors={"unified_obs provider, 3 attributes": "raw SDK provider, 3 attributes"},
            setup=_setup,
            teardown=_teardown,
            notes=(__doc__ or "").split("\n\n")[1],
        )
    ]
