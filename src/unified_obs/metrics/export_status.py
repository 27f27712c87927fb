"""What the export pipeline is doing now, per signal: items waiting in each batch queue and
when items were last exported, failed or dropped (wall-clock time, for people to read).

The self-metrics hooks fill it (``_self_metrics``: the exporter wrapper and the batch
processors it watches), off the request path; the debug endpoint ``/debug/telemetry``
reads it.  The counts themselves are the self-metrics counters (``metrics.value``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Final

__all__ = ["OUTCOMES", "forget", "record", "snapshot", "watch_queue"]

OUTCOMES: Final = ("exported", "failed", "dropped")

_lock: Final = threading.Lock()
_queues: dict[str, list[Callable[[], int]]] = {}
_last: dict[tuple[str, str], float] = {}


def watch_queue(signal: str, depth: Callable[[], int]) -> None:
    """Count ``depth()`` (items waiting in one batch queue) into ``signal`` 's queue depth."""
    with _lock:
        _queues.setdefault(signal, []).append(depth)


def record(signal: str, outcome: str) -> None:
    """Note that items of ``signal`` were just ``exported``, ``failed`` or ``dropped``."""
    _last[signal, outcome] = time.time()  # one dict store: atomic, no lock on this path


def forget() -> None:
    """Start over (a new ``setup()``): no queues, no times."""
    with _lock:
        _queues.clear()
        _last.clear()


def snapshot(
    signals: tuple[str, ...] = ("traces", "metrics", "logs"),
) -> dict[str, dict[str, object]]:
    """Per signal: ``queued`` (items waiting; ``None`` when no queue is watched) and
    ``last_<outcome>_at`` (ISO-8601 UTC, ``None`` when it never happened)."""
    with _lock:
        queues = {signal: list(depths) for signal, depths in _queues.items()}
    return {
        signal: {
            "queued": _total(queues.get(signal)),
            **{f"last_{outcome}_at": _when(_last.get((signal, outcome))) for outcome in OUTCOMES},
        }
        for signal in signals
    }


def _total(depths: list[Callable[[], int]] | None) -> int | None:
    if not depths:
        return None
    total = 0
    for depth in depths:
        try:
            total += depth()
        except Exception:  # a processor that changed under us: skip it
            continue
    return total


def _when(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, timezone.utc).isoformat(timespec="milliseconds")
