"""Metrics hot path against raw ``prometheus_client`` and the OTel SDK, in one run.

Budgets (issue 3): a bound child's ``inc()`` <= 1.2x a raw prebound child's; ``labels(...)
.inc()`` <= 1.0x raw ``labels(...).inc()``; a histogram ``observe`` that records an
exemplar <= 2.0x a raw prebound ``observe`` without one; each of ours >= 8x faster
(<= 0.125x) than the OTel SDK ``add``/``record`` with a periodic reader.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry import context, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import Counter as RawCounter
from prometheus_client import Histogram as RawHistogram
from prometheus_client.registry import CollectorRegistry

from benchmarks._harness import Group
from unified_obs import metrics


class _DropExporter(MetricExporter):
    """Accepts and discards (the reader's interval is an hour: it never fires anyway)."""

    def export(self, metrics_data: MetricsData, timeout_millis: float = 0, **kw: Any) -> Any:
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 0) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 0, **kw: Any) -> None:
        pass


def _otel_instruments() -> tuple[Any, Any]:
    reader = PeriodicExportingMetricReader(_DropExporter(), export_interval_millis=3_600_000)
    meter = MeterProvider(metric_readers=[reader], shutdown_on_exit=False).get_meter("bench")
    return meter.create_counter("bench.otel.calls"), meter.create_histogram("bench.otel.duration")


_LABELS: Sequence[str] = ("method", "route", "status")


def groups() -> list[Group]:
    """Counter, histogram and OTel SDK comparison groups."""
    raw_registry = CollectorRegistry()
    raw_counter = RawCounter("raw_calls", "raw", _LABELS, registry=raw_registry)
    raw_hist = RawHistogram("raw_duration_seconds", "raw", _LABELS, registry=raw_registry)
    raw_child = raw_counter.labels("GET", "/x", "200")
    raw_hchild = raw_hist.labels("GET", "/x", "200")
    ours = metrics.counter("bench.calls", "Calls", labels=_LABELS)
    ours_hist = metrics.histogram("bench.duration", "Duration", unit="s", labels=_LABELS)
    child = ours.labels("GET", "/x", "200")
    hchild = ours_hist.labels("GET", "/x", "200")
    otel_counter, otel_hist = _otel_instruments()
    span = TracerProvider().get_tracer("bench").start_span("request")
    token: list[Any] = []

    def in_span() -> None:
        token.append(context.attach(trace.set_span_in_context(span)))

    def out_of_span() -> None:
        context.detach(token.pop())

    counter_cases = {
        "raw prebound child.inc()": raw_child.inc,
        "ours bound child.inc()": child.inc,
        "raw labels(3).inc()": lambda: raw_counter.labels("GET", "/x", "200").inc(),
        "ours labels(3).inc()": lambda: ours.labels("GET", "/x", "200").inc(),
        "raw labels(kw).inc()": lambda: raw_counter.labels(
            method="GET", route="/x", status="200"
        ).inc(),
        "ours labels(kw).inc()": lambda: ours.labels(method="GET", route="/x", status="200").inc(),
        "otel sdk counter.add(1, 3 attrs)": lambda: otel_counter.add(
            1, {"method": "GET", "route": "/x", "status": "200"}
        ),
    }
    histogram_cases = {
        "raw prebound child.observe()": lambda: raw_hchild.observe(0.03),
        "ours observe + exemplar": lambda: hchild.observe(0.03),
        "raw labels(3).observe()": lambda: raw_hist.labels("GET", "/x", "200").observe(0.03),
        "ours labels(3).observe() + exemplar": lambda: ours_hist.labels("GET", "/x", "200").observe(
            0.03
        ),
        "otel sdk histogram.record(v, 3 attrs)": lambda: otel_hist.record(
            0.03, {"method": "GET", "route": "/x", "status": "200"}
        ),
    }
    otel = "otel sdk counter.add(1, 3 attrs)"
    otel_record = "otel sdk histogram.record(v, 3 attrs)"
    return [
        Group(
            "metrics: counter (no span current)",
            counter_cases,
            anchor="raw prebound child.inc()",
            budgets={
                "ours bound child.inc()": 1.2,
                "ours labels(3).inc()": 1.0,
                "ours labels(kw).inc()": 1.0,
            },
            budget_anchors={
                "ours labels(3).inc()": "raw labels(3).inc()",
                "ours labels(kw).inc()": "raw labels(kw).inc()",
            },
        ),
        Group(
            "metrics: histogram (a sampled span is current: ours record an exemplar)",
            histogram_cases,
            anchor="raw prebound child.observe()",
            budgets={
                "ours observe + exemplar": 2.0,
                "ours labels(3).observe() + exemplar": 1.0,
            },
            budget_anchors={"ours labels(3).observe() + exemplar": "raw labels(3).observe()"},
            setup=in_span,
            teardown=out_of_span,
        ),
        Group(
            "metrics: ours vs the OTel SDK (>= 8x faster means ratio <= 0.125)",
            {
                otel: counter_cases[otel],
                otel_record: histogram_cases[otel_record],
                "ours bound child.inc() + exemplar": child.inc,
                "ours labels(3).inc() + exemplar": counter_cases["ours labels(3).inc()"],
                "ours observe + exemplar": histogram_cases["ours observe + exemplar"],
                "ours labels(3).observe() + exemplar": histogram_cases[
                    "ours labels(3).observe() + exemplar"
                ],
            },
            anchor=otel,
            budgets={
                "ours bound child.inc() + exemplar": 0.125,
                "ours labels(3).inc() + exemplar": 0.125,
                "ours observe + exemplar": 0.125,
                "ours labels(3).observe() + exemplar": 0.125,
            },
            budget_anchors={
                "ours observe + exemplar": otel_record,
                "ours labels(3).observe() + exemplar": otel_record,
            },
            setup=in_span,
            teardown=out_of_span,
        ),
    ]
