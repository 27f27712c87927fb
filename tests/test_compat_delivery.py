"""Every signal reaches a real OTLP receiver on whatever OpenTelemetry release is installed.

CI runs this module (with the other modules `./run compat` names) in fresh environments at
the declared floor and at the newest releases, so it proves the declared versions work.
"""

from __future__ import annotations

import logging

import opentelemetry.sdk.version
from opentelemetry import trace

import unified_obs as obs
from tests.otlp_receiver import otlp_receiver


def test_spans_logs_and_metrics_reach_the_receiver_and_shutdown_is_ok() -> None:
    """On the installed SDK, setup() then a span, a structlog line, a stdlib line and a
    counter reach the OTLP receiver, and shutdown() reports every signal ok."""
    with otlp_receiver() as (endpoint, received):
        obs.setup(service_name="compat", environ={}, otlp_endpoint=endpoint, handle_signals=False)
        with obs.span("with-helper"):
            obs.get_logger("compat").info("structlog.line")
        with trace.get_tracer("compat").start_as_current_span("with-api"):
            logging.getLogger("compat.stdlib").warning("stdlib.line")
        obs.counter("compat.events", "Events").inc()
        result = obs.shutdown(timeout=10)
        spans = {span.name for _, span in received.spans()}
        bodies = {record.body.string_value for _, record in received.logs()}
        metrics = {metric.name for _, metric in received.metrics()}
    version = opentelemetry.sdk.version.__version__
    assert result.ok, (version, result)
    assert {"with-helper", "with-api"} <= spans, version
    assert {"structlog.line", "stdlib.line"} <= bodies, version
    assert "compat.events" in metrics, version


def test_spans_keep_flowing_after_the_first_export() -> None:
    """The batch worker survives its exports: spans ended after a first export (forced by
    a flush) are exported too, so a hook that breaks the worker cannot go unnoticed."""
    with otlp_receiver() as (endpoint, received):
        obs.setup(service_name="compat", environ={}, otlp_endpoint=endpoint, handle_signals=False)
        provider = trace.get_tracer_provider()
        for round_number in range(3):
            with obs.span(f"round-{round_number}"):
                obs.get_logger("compat").info(f"log-{round_number}")
            assert provider.force_flush(5_000)  # type: ignore[attr-defined]
        result = obs.shutdown(timeout=10)
        spans = {span.name for _, span in received.spans()}
        bodies = {record.body.string_value for _, record in received.logs()}
    assert result.ok, result
    assert {"round-0", "round-1", "round-2"} <= spans
    assert {"log-0", "log-1", "log-2"} <= bodies
