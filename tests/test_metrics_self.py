"""Self-metrics on /metrics: exported, failed and dropped spans and log records."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

import unified_obs as obs
from tests.otlp_receiver import closed_port, otlp_receiver
from unified_obs import metrics
from unified_obs._compat import active_paths


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
    if active_paths()["otel.batch_drop_hook"]:  # the SDK reports drops (1.45+)
        assert _items("traces", "dropped") > 0
    assert _items("traces", "failed") > 0
    assert _items("traces", "exported") == 0
    assert (metrics.value("unified_obs.export.failures", signal="traces") or 0) >= 1
    assert (metrics.value("unified_obs.export.failures", signal="metrics") or 0) >= 1


def test_an_earlier_setups_late_exports_do_not_count_in_the_next_one() -> None:
    """An export thread that outlives its setup (a collector that never answered before
    shutdown gave up) cannot count into the metrics of the next setup."""
    from unified_obs.testing import reset

    port = closed_port()
    first = obs.setup(
        service_name="selfm", environ={}, otlp_endpoint=f"http://127.0.0.1:{port}",
        otlp_timeout=0.2, logs_exporter="none", metrics_exporter="none",
    )  # fmt: skip
    provider: Any = first.tracer_provider
    (batch,) = provider._active_span_processor._span_processors
    late_exporter = batch._batch_processor._exporter  # the counting wrapper of the first setup
    span = trace.get_tracer("t").start_span("late")
    span.end()
    obs.shutdown(timeout=1)
    reset()
    obs.setup(service_name="selfm", environ={}, traces_exporter="none", handle_signals=False)
    late_exporter.export([span])  # as a thread left over from the first setup would
    assert _items("traces", "failed") == 0
    assert metrics.value("unified_obs.export.failures", signal="traces") in (None, 0)
