"""Exact accounting of the batch queues (spans and log records) when threads race for
their last free slots."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from opentelemetry import trace

import unified_obs as obs
from tests.otlp_receiver import otlp_receiver
from unified_obs import metrics
from unified_obs._compat import active_paths
from unified_obs._compat.opentelemetry_log_batch import ExactBatchLogRecordProcessor
from unified_obs._compat.opentelemetry_logs import LoggerProvider

THREADS = 4
ROUNDS = 150
ITEMS_PER_ROUND = 3
PRODUCED = THREADS * ROUNDS * ITEMS_PER_ROUND

needs_drop_hook = pytest.mark.skipif(
    not active_paths()["otel.batch_drop_hook"],
    reason="the installed SDK (before 1.45) drops from a full queue without telling anyone",
)


def _items(signal: str, outcome: str) -> int:
    return int(metrics.value("unified_obs.export.items", signal=signal, outcome=outcome) or 0)


@pytest.fixture
def frequent_switches() -> Iterator[None]:
    """Threads switch every microsecond, so that a check and an append of one thread often
    have another thread's in between (the interleaving the race needs)."""
    saved = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(saved)


def _race(produce: Callable[[], None]) -> None:
    """``THREADS`` threads each call ``produce`` ``ITEMS_PER_ROUND`` times per round,
    all starting each round together."""
    start = threading.Barrier(THREADS)

    def run() -> None:
        for _ in range(ROUNDS):
            start.wait(10)
            for _ in range(ITEMS_PER_ROUND):
                produce()

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def _end_a_span() -> None:
    with trace.get_tracer("race").start_as_current_span("raced"):
        pass


@needs_drop_hook
def test_every_span_is_exported_or_counted_as_dropped_when_threads_race(
    frequent_switches: None,
) -> None:
    """Threads that end spans together into a queue of four (the exporter sending to a
    real OTLP receiver meanwhile) never evict a span uncounted: after shutdown, the spans
    exported plus those counted as dropped or failed are exactly the spans ended, and the
    receiver got every span counted as exported."""
    with otlp_receiver() as (endpoint, received):
        obs.setup(
            service_name="race", environ={}, otlp_endpoint=endpoint, handle_signals=False,
            bsp_max_queue_size=4, bsp_max_export_batch_size=2, logs_exporter="none",
        )  # fmt: skip
        _race(_end_a_span)
        assert obs.shutdown(timeout=10).ok
        delivered = sum(span.name == "raced" for _, span in received.spans())
    exported, dropped = _items("traces", "exported"), _items("traces", "dropped")
    assert (exported, _items("traces", "failed")) == (delivered, 0)
    assert exported + dropped == PRODUCED, (exported, dropped, PRODUCED)


@needs_drop_hook
def test_every_log_record_is_exported_or_counted_as_dropped_when_threads_race(
    frequent_switches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threads that log together into a log-record queue of four (the SDK's own
    ``OTEL_BLRP_*`` sizes; the exporter sending to a real OTLP receiver meanwhile) never
    evict a record uncounted: after shutdown, the records exported plus those counted as
    dropped or failed are exactly the lines logged, and the receiver got every record
    counted as exported."""
    monkeypatch.setenv("OTEL_BLRP_MAX_QUEUE_SIZE", "4")
    monkeypatch.setenv("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "2")
    with otlp_receiver() as (endpoint, received):
        obs.setup(
            service_name="race", environ={}, otlp_endpoint=endpoint, handle_signals=False,
            traces_exporter="none", metrics_exporter="none", log_format="json",
        )  # fmt: skip
        logger = obs.get_logger("race")
        _race(lambda: logger.info("raced"))
        assert obs.shutdown(timeout=10).ok
        delivered = sum(record.body.string_value == "raced" for _, record in received.logs())
    exported, dropped = _items("logs", "exported"), _items("logs", "dropped")
    assert (exported, _items("logs", "failed")) == (delivered, 0)
    assert exported + dropped == PRODUCED, (exported, dropped, PRODUCED)


class HoldingExporter:
    """A log-record exporter whose first export waits until released (so the queue fills)."""

    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()

    def export(self, batch: Sequence[Any]) -> None:
        """Note that the worker is exporting; wait for the release."""
        self.started.set()
        self.release.wait(10)

    def shutdown(self) -> None:
        """Let a waiting export go."""
        self.release.set()

    def force_flush(self, timeout_millis: int = 0) -> bool:
        """Nothing buffered here."""
        return True


class LogsFromAnotherThread(logging.Handler):
    """On the SDK's "queue full" warning, emits a log record from another thread and notes
    whether that thread finished within ``patience`` seconds (the stdlib bridge's handler
    likewise emits records while it holds its handler lock)."""

    def __init__(self, emit_record: Callable[[], None], patience: float) -> None:
        super().__init__()
        self.emit_record, self.patience = emit_record, patience
        self.finished: list[bool] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Emit from another thread once, and wait for it (bounded)."""
        if self.finished or not record.getMessage().startswith("Queue full"):
            return
        other = threading.Thread(target=self.emit_record)
        other.start()
        other.join(self.patience)
        self.finished.append(not other.is_alive())


def _forget_duplicates(logger: logging.Logger) -> None:
    """The SDK's duplicate filter shows one warning per message in 20 s; let it show the
    next "queue full" again (an earlier test may have had one in this window)."""
    for log_filter in logger.filters:
        vars(log_filter).pop("last_log", None)


def test_the_queue_full_warning_reaches_handlers_after_the_queue_lock_is_released() -> None:
    """The SDK warns of a full log-record queue only once the warning thread let go of the
    queue's lock: a handler of that warning that emits a log record from another thread
    (waiting for it at most 5 s) sees that thread finish, so a handler lock and the queue
    lock are never taken in opposite orders by two threads (no deadlock)."""
    exporter = HoldingExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(
        ExactBatchLogRecordProcessor(
            exporter, max_queue_size=1, max_export_batch_size=1, schedule_delay_millis=60_000
        )
    )
    otel_logger = provider.get_logger("deadlock")
    handler = LogsFromAnotherThread(lambda: otel_logger.emit(body="from the handler"), 5.0)
    sdk_logger = logging.getLogger("opentelemetry.sdk._shared_internal")
    sdk_logger.addHandler(handler)
    _forget_duplicates(sdk_logger)
    try:
        otel_logger.emit(body="taken by the worker")
        assert exporter.started.wait(10)
        otel_logger.emit(body="waits in the queue")
        otel_logger.emit(body="meets a full queue")
    finally:
        sdk_logger.removeHandler(handler)
        exporter.release.set()
        provider.shutdown()
    if not handler.finished:
        pytest.skip("the installed SDK does not warn of a full queue")
    assert handler.finished == [True]
