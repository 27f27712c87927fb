"""Spans and logs really leave the process over OTLP/HTTP and share trace ids."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry import trace

import unified_obs as obs
from tests.otlp_receiver import attributes, otlp_receiver


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


def test_stdout_line_and_otlp_exports_agree_on_ids(capsys: pytest.CaptureFixture[str]) -> None:
    """One record, three views: the stdout JSON line, the exported log record (structlog and
    stdlib alike) and the exported span carry the same trace and span ids, attributes and
    redaction, and both signals carry the same resource identity."""
    with otlp_receiver() as (endpoint, received):
        obs.setup(
            service_name="otlp-ids", environ={}, otlp_endpoint=endpoint, log_format="json",
            handle_signals=False,
        )  # fmt: skip
        with trace.get_tracer("t").start_as_current_span("request") as span:
            obs.get_logger("app").info("paid", order_id=9, password="hunter2")
            logging.getLogger("lib.db").warning("slow query %s", "q1")
            ctx = span.get_span_context()
        assert obs.shutdown(timeout=5).ok
        spans, records = received.spans(), received.logs()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_event = {line["event"]: line for line in lines}
    trace_hex, span_hex = format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
    for event in ("paid", "slow query q1"):
        assert (by_event[event]["trace_id"], by_event[event]["span_id"]) == (trace_hex, span_hex)
    exported = {rec.body.string_value: (res, rec) for res, rec in records}
    for event in ("paid", "slow query q1"):
        record = exported[event][1]
        assert record.trace_id.hex() == trace_hex
        assert record.span_id.hex() == span_hex
    paid = attributes(exported["paid"][1].attributes)
    assert paid["order_id"] == 9
    assert paid["password"] == by_event["paid"]["password"] == "[REDACTED]"
    assert exported["slow query q1"][1].severity_text == "WARNING"
    ((span_resource, exported_span),) = spans
    assert exported_span.trace_id.hex() == trace_hex
    log_resource = exported["paid"][0]
    assert span_resource["service.instance.id"] == log_resource["service.instance.id"]
    assert span_resource["service.name"] == log_resource["service.name"] == "otlp-ids"


def test_odd_log_values_are_exported_as_text() -> None:
    """Values OTLP cannot carry as they are (ints beyond 64 bits, tuples, nested dicts) are
    exported as text instead of being dropped with an encoder error."""
    with otlp_receiver() as (endpoint, received):
        obs.setup(service_name="odd", environ={}, otlp_endpoint=endpoint, handle_signals=False)
        obs.get_logger("t").info("odd", big=2**80, pair=(1, 2), nested={"a": [1, {"b": None}]})
        assert obs.shutdown(timeout=5).ok
        records = received.logs()
    (record,) = [rec for _, rec in records if rec.body.string_value == "odd"]
    values = attributes(record.attributes)
    assert values["big"] == str(2**80)
    assert json.loads(values["pair"]) == [1, 2]
    assert json.loads(values["nested"]) == {"a": [1, {"b": None}]}
