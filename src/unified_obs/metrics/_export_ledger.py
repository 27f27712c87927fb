"""Exact per-signal accounting of the items handed to the batch processors.

Every span or log record a batch processor accepts ends in exactly one of four places:
``exported`` (the exporter said yes), ``failed`` (it said no or raised), ``dropped``
(the queue was full, or the processor was shut down) or still ``queued`` (waiting in the
queue, or in the batch being exported).  So at a quiet moment -- after a flush, after
``shutdown()`` -- ``produced == exported + failed + dropped + queued`` exactly.  While
items flow, a reader may miss the one batch the worker has taken off the queue and not
yet reported as submitted (at most ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` items).

The self-metrics hooks (``_self_metrics``) record here, under one lock per signal, off
the request path: once per exported batch, once per dropped item.
"""

from __future__ import annotations

import threading
from typing import Final

__all__ = ["OUTCOMES", "counts", "forget", "record"]

OUTCOMES: Final = ("exported", "failed", "dropped", "submitted")


class _Ledger:
    """One signal's totals (``submitted``: taken off the queue for an export call)."""

    __slots__ = ("lock", "totals")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.totals = dict.fromkeys(OUTCOMES, 0)

    def add(self, outcome: str, amount: int) -> None:
        with self.lock:
            self.totals[outcome] += amount

    def read(self, waiting: int) -> dict[str, int]:
        """The four places, given ``waiting`` items in the signal's queues now."""
        with self.lock:
            totals = dict(self.totals)
        in_flight = totals["submitted"] - totals["exported"] - totals["failed"]
        return {
            "exported": totals["exported"],
            "failed": totals["failed"],
            "dropped": totals["dropped"],
            "queued": waiting + max(in_flight, 0),
        }


_ledgers: dict[str, _Ledger] = {}
_create: Final = threading.Lock()


def record(signal: str, outcome: str, amount: float) -> None:
    """Add ``amount`` items of ``signal`` to ``outcome`` (one of :data:`OUTCOMES`)."""
    if outcome not in OUTCOMES:
        return
    ledger = _ledgers.get(signal)
    if ledger is None:
        with _create:
            ledger = _ledgers.setdefault(signal, _Ledger())
    ledger.add(outcome, int(amount))


def counts(waiting: dict[str, int]) -> dict[str, dict[str, int]]:
    """Per signal seen so far: ``exported``, ``failed``, ``dropped`` and ``queued``
    (``waiting`` gives the items in each signal's queues now)."""
    return {signal: ledger.read(waiting.get(signal, 0)) for signal, ledger in _ledgers.items()}


def forget() -> None:
    """Start over (a new ``setup()``)."""
    with _create:
        _ledgers.clear()
