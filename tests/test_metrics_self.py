"""Self-metrics on /metrics: exported, failed and dropped spans and log records."""

from __future__ import annotations

from opentelemetry import trace

import unified_obs as obs
from tests.otlp_receiver import closed_port, otlp_receiver
from unified_obs import metrics


def _items(signal: str, outcome: str) -> float:
    return metrics.value("unified_obs.export.items", signal=signal, outcome=outcome) or 0.0


def test_exported_spans_and_log_records_are_counted() -> None:
    """Every span and log record the collector accepted is counted as exported."""
    with otlp_receiver() as (endpoint, received):
        obs.setup(service_name="selfm", environ={}, otlp_endpoint=endpoint, log_level="info")
        log = obs.get_logger("t")
        for i in range(3):
            with trace.get_tracer("t").start_as_current_span(f"s{i}"):
                log.info("inside", i=i)
        assert obs.shutdown(timeout=5).ok
        spans, records = len(received.spans()), len(received.logs())
    assert _items("traces", "exported") == spans == 3
    assert _items("logs", "exported") == records >= 3
    assert _items("traces", "failed") == 0


def test_failed_and_dropped_spans_are_counted() -> None:
    """With the collector down and a tiny queue, failed exports and queue drops are counted,
    and the metrics pusher's failed calls too."""
    port = closed_port()
    obs.setup(
        service_name="selfm", environ={}, otlp_endpoint=f"http://127.0.0.1:{port}",
        otlp_timeout=0.2, bsp_max_queue_size=4, bsp_max_export_batch_size=4,
        bsp_schedule_delay=60, logs_exporter="none",
    )  # fmt: skip
    for i in range(40):
        with trace.get_tracer("t").start_as_current_span(f"s{i}"):
            pass
    obs.shutdown(timeout=3)
    assert _items("traces", "dropped") > 0
    assert _items("traces", "failed") > 0
    assert _items("traces", "exported") == 0
    assert (metrics.value("unified_obs.export.failures", signal="traces") or 0) >= 1
    assert (metrics.value("unified_obs.export.failures", signal="metrics") or 0) >= 1
