"""Spans and logs really leave the process over OTLP/HTTP and share trace ids."""

from __future__ import annotations

from opentelemetry import trace

import unified_obs as obs
from tests.otlp_receiver import otlp_receiver


def test_spans_and_logs_over_otlp_share_trace_id() -> None:
    """A log line written inside a span arrives at the collector with that span's ids."""
    with otlp_receiver() as (endpoint, received):
        obs.setup(service_name="otlp-test", environ={}, otlp_endpoint=endpoint, log_format="json")
        log = obs.get_logger("t")
        with trace.get_tracer("t").start_as_current_span("work") as span:
            log.info("inside", item=7)
            ctx = span.get_span_context()
        result = obs.shutdown(timeout=5)
        assert result.ok, result
        spans = received.spans()
        records = received.logs()
    assert [s.name for _, s in spans] == ["work"]
    resource, record = next((r, rec) for r, rec in records if rec.body.string_value == "inside")
    assert resource["service.name"] == "otlp-test"
    assert record.trace_id == ctx.trace_id.to_bytes(16, "big")
    assert record.span_id == ctx.span_id.to_bytes(8, "big")
    assert spans[0][1].trace_id == record.trace_id
