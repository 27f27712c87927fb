"""Test helpers (public API): capture telemetry in memory and reset the process.

    from unified_obs.testing import capture, reset

    with capture() as cap:
        handle_request()
    assert cap.spans[0].name == "GET /orders/{id}"
    assert cap.logs[0]["trace_id"] == format(cap.spans[0].context.trace_id, "032x")

``reset()`` restores a clean process, including OpenTelemetry's set-once
global providers, so each test can call ``setup()`` afresh.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY
from structlog.typing import EventDict, WrappedLogger

from . import (
    _setup,
    admin,
    context,
    health,
    lifecycle,
    logs,
    metrics,
    outbound,
    resilience,
    resource,
    tracing,
)
from ._compat import opentelemetry as otel_compat
from ._http.next_turn import run_pending
from .resilience import faults

__all__ = ["Captured", "capture", "reset"]


class _LogCapture:
    """A processor that keeps a copy of every enriched event dict."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        self.records.append(dict(event_dict))
        return event_dict


@dataclass
class Captured:
    """Telemetry recorded inside a :func:`capture` block, readable while it runs."""

    _spans: InMemorySpanExporter
    _logs: _LogCapture
    telemetry: _setup.Telemetry
    _extra: dict[str, Any] = field(default_factory=dict)

    @property
    def spans(self) -> Sequence[ReadableSpan]:
        """Finished spans, oldest first."""
        run_pending()  # requests whose recording waits for the event loop's next turn
        return self._spans.get_finished_spans()

    @property
    def logs(self) -> list[dict[str, Any]]:
        """Log records as event dicts after enrichment (trace ids, fields), before rendering."""
        run_pending()
        return self._logs.records

    def span(self, name: str) -> ReadableSpan:
        """The single finished span called ``name`` (``AssertionError`` otherwise)."""
        found = [s for s in self.spans if s.name == name]
        assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in self.spans]}"
        return found[0]

    def metric(self, name: str, **labels: Any) -> float | None:
        """This process's value of one metric series: counters and gauges their value,
        histograms their count; ``name`` is the instrument name (``orders.created``) or a
        Prometheus sample name (``orders_created_total``).

        ``labels`` may name only some of the series' labels: the one series whose labels
        include them is answered.  When several series match, ``AssertionError`` lists
        them (give more labels); ``None`` when no series matches or nothing was recorded.
        """
        exact = metrics.value(name, **labels)
        if exact is not None:
            return exact
        found = _series_matching(name, {key: str(value) for key, value in labels.items()})
        if len(found) > 1:
            shown = ", ".join(_labels_text(series_labels) for series_labels, _ in found)
            raise AssertionError(
                f"{len(found)} series of {name!r} match {_labels_text(labels)}: {shown}; "
                "give more labels"
            )
        return found[0][1] if found else None

    def clear(self) -> None:
        """Forget what was captured so far (requests still waiting to be recorded too)."""
        run_pending()
        self._spans.clear()
        self._logs.records.clear()


Series = tuple[dict[str, str], float]


def _series_matching(name: str, wanted: dict[str, str]) -> list[Series]:
    """Every series of ``name`` (an instrument or a Prometheus sample name) whose labels
    include ``wanted``."""
    every = _instrument_series(name)
    if every is None:
        every = _sample_series(name)
    return [(found, value) for found, value in every if wanted.items() <= found.items()]


def _instrument_series(name: str) -> list[Series] | None:
    """The series of our instrument called ``name``, ``None`` if there is none."""
    for instrument in metrics.instruments():
        if instrument.name == name:
            label_names = instrument.definition.labels
            return [
                (dict(zip(label_names, key, strict=True)), bound.value())
                for key, bound in instrument.series()
            ]
    return None


def _sample_series(name: str) -> list[Series]:
    """The samples called ``name`` in the Prometheus registry ``/metrics`` renders (what
    waits for the event loop's next turn was recorded by the exact lookup before)."""
    return [
        (dict(sample.labels), float(sample.value))
        for family in REGISTRY.collect()
        for sample in family.samples
        if sample.name == name
    ]


def _labels_text(labels: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{key}={value!r}" for key, value in sorted(labels.items())) + "}"


@contextmanager
def capture(**setup_options: Any) -> Iterator[Captured]:
    """Capture spans and log records in memory.

    Uses the live ``setup()`` if there is one; otherwise sets up with no
    exporters (plus ``setup_options``) and resets the process afterwards.
    """
    telemetry = _setup.active()
    owned = telemetry is None
    if telemetry is None:
        options = {
            "service_name": "test",
            "traces_exporter": "none",
            "logs_exporter": "none",
            "metrics_exporter": "none",
            **setup_options,
        }
        telemetry = _setup.setup(environ={}, **options)
    exporter = InMemorySpanExporter()
    # as the batch processor is: dropped spans kept at their end (traces_keep_*) arrive too
    span_processor = tracing.keeping(telemetry.settings, SimpleSpanProcessor(exporter))
    log_capture = _LogCapture()
    provider = telemetry.tracer_provider
    if provider is not None:
        provider.add_span_processor(span_processor)
    telemetry.log_pipeline.insert_before_render(log_capture)
    try:
        yield Captured(exporter, log_capture, telemetry)
    finally:
        run_pending()  # what the block's requests left for the event loop's next turn
        telemetry.log_pipeline.remove(log_capture)
        if provider is not None:
            otel_compat.remove_span_processor(provider, span_processor)
        if owned:
            reset()


def reset() -> None:
    """Shut down and forget the live setup and restore every global it touched."""
    run_pending()  # recorded by the setup it belongs to, not by the next test's
    telemetry = _setup.forget()
    if telemetry is not None:
        telemetry.shutdown(timeout=1.0)
    logs.reset()
    metrics.reset()
    _reset_otel_globals()
    resource.forget_resources()
    context.clear()
    admin.close_all()
    health.reset()
    lifecycle.reset()
    outbound.uninstrument()
    resilience.reset()
    faults.reset()


def _reset_otel_globals() -> None:
    """OpenTelemetry's providers can be set once per process; tests need them again."""
    otel_compat.reset_global_providers()
    _setup.reset_propagators()
