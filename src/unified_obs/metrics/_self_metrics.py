"""Self-metrics: what happened to the telemetry the process produced, on ``/metrics``.

``unified_obs_export_items_total{signal, outcome}`` counts spans and log records
``exported``, ``failed`` (the exporter said no) and ``dropped`` (the batch queue was
full or the processor was shut down), and the data points the OTLP metrics pusher
exported or failed to; ``unified_obs_export_failures_total{signal}`` counts failed
export calls; ``export_status`` keeps the time of each outcome, the kind of the last
failure and the batch queues' depths for ``/debug/telemetry``.  Nothing is added to the record path:
the counts are taken from the batch processor's drop hook and around each export call,
both of which run rarely or off the request thread.  The SDK attributes this needs are
private and reached through ``_compat.opentelemetry``: where its probes say no, the
self-metrics are skipped (or drops go uncounted), never the telemetry.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

from .._compat import opentelemetry as otel
from . import _export_ledger, _exposition, export_status

__all__ = [
    "export_counts",
    "new_epoch",
    "publish_queued",
    "watch_logger_provider",
    "watch_tracer_provider",
]

Count = Callable[[str, str, float], None]  # (signal, outcome, amount)

_epoch = 0
"""Bumped by every ``setup()``: the hooks of an earlier setup stop counting, so an export
thread that outlived its ``shutdown()`` cannot count into the next setup's metrics."""


def new_epoch() -> None:
    """Start counting for a new setup; hooks installed before stop counting."""
    global _epoch
    _epoch += 1
    export_status.forget()
    _export_ledger.forget()
    _exposition.before_every_read(publish_queued)  # once: the same function every setup


def export_counts() -> dict[str, dict[str, int]]:
    """Per signal: items ``exported``, ``failed``, ``dropped`` and still ``queued`` since
    ``setup()`` (see :mod:`._export_ledger` for when they add up exactly)."""
    status = export_status.snapshot(("traces", "logs"))
    waiting = {signal: _int(entry["queued"]) for signal, entry in status.items()}
    return _export_ledger.counts(waiting)


def publish_queued() -> None:
    """Set ``unified_obs_export_queued{signal}`` from :func:`export_counts` (before every
    read of the metrics, so a scrape shows the queues as they are); never raises."""
    from . import gauge

    try:
        counts = export_counts()
        if not counts:
            return
        queued = gauge(
            "unified_obs.export.queued",
            "Spans and log records waiting in a batch queue or being exported",
            labels=("signal",),
        )
        for signal, tally in counts.items():
            queued.labels(signal).set(tally["queued"])
    except Exception:  # a scrape must not fail for its self-metrics
        return


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _this_epoch(count: Count) -> Count:
    born = _epoch

    def counted(signal: str, outcome: str, amount: float) -> None:
        if _epoch == born:
            _export_ledger.record(signal, outcome, amount)
            if outcome == "submitted":  # the ledger's alone: not a metric's outcome
                return
            count(signal, outcome, amount)
            export_status.record(signal, outcome)

    return counted


class _ProcessorHook:
    """Stands in for the SDK batch processor's metrics hook (``drop_items`` and friends)."""

    def __init__(self, signal: str, count: Count, inner: Any, batch: Any = None) -> None:
        self._signal = signal
        self._count = count
        self._inner = inner
        self._batch = None if batch is None else weakref.ref(batch)

    def register_queue_size(self, get_queue_size: Callable[[], int]) -> None:
        """Passed on to the SDK's own hook."""
        self._inner.register_queue_size(get_queue_size)

    def drop_items(self, count: int, error_type: str = "queue_full") -> None:
        """The queue was full (or the processor shut down): ``count`` items lost.

        A full queue: take the oldest items out here, so that what is counted is what
        was removed (the SDK's own count can include items its worker took meanwhile)."""
        batch = None if self._batch is None else self._batch()
        if error_type == "queue_full" and batch is not None:
            count = sum(otel.drop_oldest(batch) for _ in range(count))
        if count:
            self._count(self._signal, "dropped", count)
            self._inner.drop_items(count, error_type)

    def finish_items(self, *args: Any, **kwargs: Any) -> None:
        """Passed on to the SDK's own hook, whatever its signature: ``(count)`` in 1.45,
        ``(count, error)`` in 1.41 to 1.44.  The count goes to the ledger as submitted."""
        if args and isinstance(args[0], int):
            self._count(self._signal, "submitted", args[0])
        self._inner.finish_items(*args, **kwargs)


class _CountingExporter:
    """Wraps a span or log exporter: counts items by outcome and failed calls, and notes
    the kind of the last failure."""

    def __init__(self, inner: Any, signal: str, count: Count) -> None:
        self._inner = inner
        self._signal = signal
        self._count = count
        self._born = _epoch

    def export(self, batch: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
        """Export through the wrapped exporter and count the outcome."""
        try:
            result = self._inner.export(batch, *args, **kwargs)
        except Exception as exc:
            self._failed(len(batch), f"{type(exc).__name__} raised")
            raise
        if getattr(result, "name", "SUCCESS") == "SUCCESS":
            self._count(self._signal, "exported", len(batch))
        else:
            self._failed(len(batch), f"the exporter returned {getattr(result, 'name', result)}")
        return result

    def _failed(self, items: int, kind: str) -> None:
        self._count(self._signal, "failed", items)
        self._count(self._signal, "call_failed", 1)
        if _epoch == self._born:
            export_status.record_error(self._signal, kind)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _watch_batch(processor: Any, signal: str, count: Count) -> None:
    batch = otel.batch_of(processor)
    if batch is None:  # an SDK whose batch processor we do not know: no self-metrics
        return
    otel.replace_batch_exporter(batch, lambda inner: _counting(inner, signal, count))
    otel.replace_drop_hook(batch, lambda inner: _hooked(inner, signal, count, batch))
    export_status.watch_queue(signal, _queue_depth(weakref.ref(batch)))


def _counting(inner: Any, signal: str, count: Count) -> Any:
    return (
        inner if isinstance(inner, _CountingExporter) else _CountingExporter(inner, signal, count)
    )


def _hooked(inner: Any, signal: str, count: Count, batch: Any) -> Any:
    if isinstance(inner, _ProcessorHook):
        return inner
    return _ProcessorHook(signal, count, inner, batch)


def _queue_depth(batch: weakref.ref[Any]) -> Callable[[], int]:
    """The number of items waiting in ``batch`` 's queue (0 once it is gone)."""

    def depth() -> int:
        alive = batch()
        return 0 if alive is None else otel.queue_depth(alive)

    return depth


def watch_tracer_provider(provider: Any, count: Count) -> None:
    """Count the spans every batch processor of ``provider`` exports, fails or drops
    (until the next :func:`new_epoch`)."""
    count = _this_epoch(count)
    for processor in otel.span_processors(provider):
        _watch_batch(processor, "traces", count)


def watch_logger_provider(provider: Any, count: Count) -> None:
    """Count the log records every batch processor of ``provider`` exports, fails or drops
    (until the next :func:`new_epoch`)."""
    count = _this_epoch(count)
    for processor in otel.log_record_processors(provider):
        _watch_batch(processor, "logs", count)
