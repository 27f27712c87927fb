"""The same measurements arrive over OTLP: values, resource, exemplars, OTel-API metrics."""

from __future__ import annotations

import time
from typing import Any

import pytest
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from prometheus_client import REGISTRY

import unified_obs as obs
from tests.otlp_receiver import Received, closed_port, otlp_receiver
from unified_obs import Settings
from unified_obs.metrics._otel_pipeline import build_exporter


def _latest(received: Received, name: str) -> tuple[dict[str, Any], Any]:
    found = [(resource, metric) for resource, metric in received.metrics() if metric.name == name]
    assert found, f"no metric {name!r} received"
    return found[-1]


def test_counter_and_histogram_arrive_over_otlp_with_resource_and_exemplars() -> None:
    """Counter and histogram values pushed at shutdown equal what /metrics shows; the resource
    is the setup's and the histogram carries the sampled span as an exemplar."""
    with otlp_receiver() as (endpoint, received):
        obs.setup(service_name="otlp-metrics", environ={}, otlp_endpoint=endpoint)
        orders = obs.counter("orders.created", "Orders", labels=("channel",))
        latency = obs.histogram("http.server.request.duration", unit="s", labels=("http.route",))
        orders.labels("web").inc(3)
        with trace.get_tracer("t").start_as_current_span("req") as span:
            latency.labels("/orders/{id}").observe(0.03)
            latency.labels("/orders/{id}").observe(0.2)
            ctx = span.get_span_context()
        prom_count = REGISTRY.get_sample_value("orders_created_total", {"channel": "web"})
        assert obs.shutdown(timeout=5).ok
        resource, counter = _latest(received, "orders.created")
        _, histogram = _latest(received, "http.server.request.duration")
    assert resource["service.name"] == "otlp-metrics"
    assert resource["service.instance.id"]
    assert counter.sum.is_monotonic
    assert counter.sum.aggregation_temporality == 2  # cumulative
    point = counter.sum.data_points[0]
    assert point.as_double == prom_count == 3.0
    assert {kv.key: kv.value.string_value for kv in point.attributes} == {"channel": "web"}
    assert histogram.unit == "s"
    hpoint = histogram.histogram.data_points[0]
    assert hpoint.count == 2
    assert abs(hpoint.sum - 0.23) < 1e-9
    assert list(hpoint.explicit_bounds)[:4] == [0.005, 0.01, 0.025, 0.05]
    assert hpoint.bucket_counts[3] == 1
    assert hpoint.bucket_counts[6] == 1
    assert {kv.key: kv.value.string_value for kv in hpoint.attributes} == {
        "http.route": "/orders/{id}"
    }
    trace_ids = {e.trace_id for e in hpoint.exemplars}
    assert trace_ids == {ctx.trace_id.to_bytes(16, "big")}


def test_otel_api_metrics_and_overflow_are_pushed() -> None:
    """Metrics recorded through the OTel API go out in the same export; the overflow series
    uses OTel's otel.metric.overflow attribute."""
    with otlp_receiver() as (endpoint, received):
        obs.setup(
            service_name="otlp-metrics",
            environ={},
            otlp_endpoint=endpoint,
            metrics_cardinality_limit=2,
        )
        otel_metrics.get_meter("lib").create_counter("lib.calls").add(5)
        users = obs.counter("logins", labels=("user",))
        for user in ("a", "b", "c", "d"):
            users.labels(user).inc()
        assert obs.shutdown(timeout=5).ok
        _, lib = _latest(received, "lib.calls")
        _, logins = _latest(received, "logins")
    assert lib.sum.data_points[0].as_int == 5
    overflow = [
        p
        for p in logins.sum.data_points
        if [kv.key for kv in p.attributes] == ["otel.metric.overflow"]
    ]
    assert len(logins.sum.data_points) == 3
    assert overflow[0].as_double == 2.0


def test_periodic_export_runs_on_the_interval() -> None:
    """With a short export interval, metrics arrive without flush or shutdown."""
    with otlp_receiver() as (endpoint, received):
        obs.setup(
            service_name="otlp-metrics",
            environ={},
            otlp_endpoint=endpoint,
            metric_export_interval=0.2,
        )
        obs.counter("ticks").inc()
        arrived = received.wait_for(lambda r: any(m.name == "ticks" for _, m in r.metrics()), 5)
    assert arrived


def test_shutdown_with_collector_down_ends_inside_the_deadline() -> None:
    """A refused collector makes the final metrics export fail within the shutdown budget
    (the exporter's own 10 s retry clock is cut short), reported as a failure."""
    port = closed_port()
    obs.setup(
        service_name="otlp-metrics", environ={}, otlp_endpoint=f"http://127.0.0.1:{port}",
        traces_exporter="none", logs_exporter="none",
    )  # fmt: skip
    obs.counter("lost").inc()
    start = time.monotonic()
    result = obs.shutdown(timeout=1.5)
    elapsed = time.monotonic() - start
    assert result.outcomes["metrics"] == "failed"
    assert elapsed < 1.6


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"metrics_exporter": "none"}, "NoneType"),
        ({"metrics_exporter": "console"}, "ConsoleMetricExporter"),
        ({"otlp_endpoint": "http://127.0.0.1:4318"}, "OTLPMetricExporter"),
        ({"metrics_exporter": "otlp", "otlp_protocol": "grpc"}, "OTLPMetricExporter"),
    ],
)
def test_exporter_follows_settings(options: dict[str, Any], expected: str) -> None:
    """OTEL_METRICS_EXPORTER and the OTLP protocol pick the metrics exporter."""
    exporter = build_exporter(Settings.from_env({}, **options))
    assert type(exporter).__name__ == expected
    if options.get("otlp_protocol") == "grpc":
        assert "grpc" in type(exporter).__module__
    if exporter is not None:
        exporter.shutdown()
