"""The SDK's batch span processor with a cheaper ``on_end`` for lean spans.

The SDK's ``BatchSpanProcessor.on_end`` reads three properties to learn whether the
span is sampled, then its ``emit`` asks the OS for the process id on every span: a
fork check that the SDK's own at-fork hook already covers.  For the common case -- a
sampled lean span, the processor running in the process that made it, room in the
queue -- :class:`LeanBatchSpanProcessor` queues the span itself, in the SDK's order,
and wakes the worker at the SDK's threshold.  Every other case takes the SDK's own
``on_end``: other spans, after shutdown, in a forked child the SDK has not reset yet,
or a full queue the first time in the SDK's warning window (its warning and
dropped-span metric; after that the drop hook makes room quietly, see
:func:`~.opentelemetry.drop_if_warned`).  A processor whose SDK keeps
these fields elsewhere uses the SDK's path throughout.

Both paths queue under one lock of the processor's.  The SDK's queue is a ``deque`` with
a ``maxlen``: two threads that each see one free slot and both append would evict an item
without anyone counting it.  Under the lock a thread that saw room is the only one
appending (the worker only takes items out), and a thread that saw the queue full has
the self-metrics drop hook take the oldest item out and count it before its append; so
produced = exported + failed + dropped + queued holds exactly.
"""

from __future__ import annotations

import collections
import os
import threading
from typing import Any, Final

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from .opentelemetry import drop_if_warned
from .opentelemetry_spans import LeanSpan

__all__ = ["LeanBatchSpanProcessor"]

_FIELDS: Final = ("_shutdown", "_pid", "_max_queue_size", "_max_export_batch_size")
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def _known(batch: Any) -> bool:
    """Whether the SDK's batch queue keeps the fields the fast path reads."""
    return (
        hasattr(os, "register_at_fork")
        and type(getattr(batch, "_queue", None)) is collections.deque
        and all(hasattr(batch, name) for name in _FIELDS)
        and callable(getattr(getattr(batch, "_worker_awaken", None), "set", None))
    )


class LeanBatchSpanProcessor(BatchSpanProcessor):
    """``BatchSpanProcessor`` (same arguments, same worker and exports) whose ``on_end``
    queues a sampled lean span without the SDK's per-span property reads and
    ``getpid`` system call."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        batch = self._batch_processor
        self._batch = batch if _known(batch) else None
        # reentrant: a handler of the SDK's "queue full" warning may end a span of its own
        self._queueing = threading.RLock()

    def on_end(self, span: ReadableSpan) -> None:
        batch = self._batch
        if batch is None:
            super().on_end(span)
            return
        queue = batch._queue
        with self._queueing:  # one appending thread at a time: no eviction goes uncounted
            if type(span) is not LeanSpan or batch._shutdown or batch._pid != _pid:
                super().on_end(span)  # the SDK's path: other spans; after shutdown; reset
                return
            # measured with the lean tracer's shortcuts (see opentelemetry_tracer._SAMPLE)
            if not span._context[3] & 1:  # type: ignore[index]  # flags at [3]
                return
            if len(queue) >= batch._max_queue_size and not drop_if_warned(batch):
                super().on_end(span)  # the SDK's path: its drop and (once a window) warning
                return
            queue.appendleft(span)
            if len(queue) >= batch._max_export_batch_size and not batch._worker_awaken.is_set():
                batch._worker_awaken.set()
