"""The SDK's batch log-record processor, queueing each record under one lock.

The SDK's queue is a ``deque`` with a ``maxlen``: its inner batch processor's ``emit``
checks for a full queue, then appends.  Two threads that each see one free slot and both
append make the deque evict the oldest record without anyone counting it.
:class:`ExactBatchLogRecordProcessor` runs that ``emit`` under one lock: one thread at a
time checks and appends (the worker only takes records out), and a thread that saw the
queue full has the self-metrics drop hook take the oldest record out and count it before
its append; so produced = exported + failed + dropped + queued holds exactly for log
records too.  Only the queueing is under the lock, not the SDK's conversion of the
record before it (most of ``on_emit``): threads that log at once rarely wait for it.

Under that lock the SDK may log ("Queue full, dropping Log.").  A logging handler takes
its own lock around ``emit``, and the stdlib bridge's handler emits log records while
holding it: had the warning reached the handlers under our lock, one thread (ours, then
the handler's) and another (the handler's, then ours) could wait for each other forever.
So while a thread holds the lock, a filter on the SDK's batch logger holds back what it
logs, and the thread hands those records to the handlers after letting go.

* ``otel.logs_exact_queue``: ``BatchLogRecordProcessor`` queues through the ``emit`` of
  an inner ``_batch_processor`` (SDK 1.39+), and every record that ``emit`` logs into a
  full queue arrives on the logger the filter sits on (``opentelemetry.sdk.
  _shared_internal``; 1.39 logs nothing there).  The probe fills a real processor's
  queue through the locked ``emit`` and checks that it saw every record and that no
  handler saw a thing.  Fallback: the SDK's processor as it is (a race can then evict a
  record uncounted).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Final, cast

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter

from ._probes import HoldingExporter, decide, register
from .opentelemetry import SDK_BATCH_LOGGER, drop_quietly

__all__ = ["LOGS_EXACT_QUEUE", "ExactBatchLogRecordProcessor"]

LOGS_EXACT_QUEUE: Final = "otel.logs_exact_queue"

Emit = Callable[[Any], None]

_holding: Final[dict[int, list[logging.LogRecord] | None]] = {}
"""The threads queueing under a processor's lock now (by ``threading.get_ident()``), each
with the SDK's records held back meanwhile (``None`` until there is one)."""


class _HoldBack(logging.Filter):
    """Holds back the SDK batch logger's records while this thread queues under the lock."""

    def filter(self, record: logging.LogRecord) -> bool:
        me = threading.get_ident()
        if me not in _holding:
            return True
        held = _holding[me]
        if held is None:
            _holding[me] = held = []
        held.append(record)
        return False


_HOLD_BACK: Final = _HoldBack()
_install: Final = threading.Lock()


def _hold_back_sdk_records() -> None:
    """Put the filter first on the SDK's batch logger (once): before the SDK's duplicate
    filter, which would otherwise take a held-back record for one already shown."""
    logger = logging.getLogger(SDK_BATCH_LOGGER)
    with _install:
        if _HOLD_BACK not in logger.filters:
            logger.filters.insert(0, _HOLD_BACK)


def _hand_on(records: list[logging.LogRecord]) -> None:
    """Hand records held back to their logger's handlers."""
    for record in records:
        logging.getLogger(record.name).handle(record)


def _queueing_under(lock: threading.RLock, batch: Any) -> Emit:
    """``batch.emit`` run under ``lock``, into a full queue quietly once the SDK has
    warned of it (:func:`~._compat.opentelemetry.drop_quietly`), with what the SDK logs
    meanwhile handed on after it."""
    emit: Emit = batch.emit

    def emit_exactly(item: Any) -> None:
        me = threading.get_ident()
        with lock:  # one appending thread at a time: no eviction goes uncounted
            if me in _holding:  # nested in this thread's own queueing: the outer hands on
                emit(item)
                return
            _holding[me] = None
            try:
                drop_quietly(batch)
                emit(item)
            finally:
                held = _holding.pop(me)
        if held:
            _hand_on(held)

    return emit_exactly


def _inner_batch(processor: object) -> Any | None:
    """The SDK's inner batch processor, where it queues through a callable ``emit``."""
    batch = getattr(processor, "_batch_processor", None)
    return batch if callable(getattr(batch, "emit", None)) else None


def _lock_queueing(processor: object) -> bool:
    """Make ``processor`` queue under a lock of its own; ``False`` where it cannot."""
    batch = _inner_batch(processor)
    if batch is None:
        return False
    # reentrant: a filter or hook of someone else's might queue a record of its own
    batch.emit = _queueing_under(threading.RLock(), batch)
    return True


class ExactBatchLogRecordProcessor(BatchLogRecordProcessor):
    """``BatchLogRecordProcessor`` (same arguments, same worker and exports) that queues
    under one lock, so that no record is evicted uncounted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exact = decide(LOGS_EXACT_QUEUE, _sdk_records_are_held_back)
        """Whether records queue under the lock (else as the SDK's processor does)."""
        if self.exact:
            _hold_back_sdk_records()  # again: the logging configuration may have changed
            self.exact = _lock_queueing(self)


# --- the probe ----------------------------------------------------------------------------


def _sdk_records_are_held_back() -> bool:
    """Three records offered through the locked ``emit`` to a queue of one (the worker
    held in its export of the first) all pass through it, and, with the filter holding
    back, no record from the SDK reaches a handler."""
    _hold_back_sdk_records()
    started, release = threading.Event(), threading.Event()
    processor = BatchLogRecordProcessor(
        cast(LogRecordExporter, HoldingExporter(started, release)),
        max_queue_size=1,
        max_export_batch_size=1,
        schedule_delay_millis=60_000,
    )
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    seen, passed = _Seen(), _Counting()
    root = logging.getLogger()
    root.addHandler(seen)
    try:
        batch = _inner_batch(processor)
        if batch is None or not _lock_queueing(processor):
            return False
        batch.emit = passed.wrap(batch.emit)
        logger = provider.get_logger("unified_obs.probe")
        logger.emit(body="taken by the worker")
        if not started.wait(5):
            return False
        logger.emit(body="waits in the queue")
        logger.emit(body="meets a full queue")
    finally:
        root.removeHandler(seen)
        release.set()
        provider.shutdown()
    return passed.count == 3 and not seen.records


class _Counting:
    """Counts the records that pass through an ``emit``, then hold the SDK's records back
    as a queueing thread does (and drop them: the probe's own warning is for no one)."""

    def __init__(self) -> None:
        self.count = 0

    def wrap(self, emit: Emit) -> Emit:
        def counted(item: Any) -> None:
            self.count += 1
            me = threading.get_ident()
            _holding[me] = None
            try:
                emit(item)
            finally:
                del _holding[me]

        return counted


class _Seen(logging.Handler):
    """Notes the OpenTelemetry records of this thread (the probe's) that reach it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.thread = threading.get_ident()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread and record.name.startswith("opentelemetry"):
            self.records.append(record)


register({LOGS_EXACT_QUEUE: _sdk_records_are_held_back})
