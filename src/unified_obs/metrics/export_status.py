"""What the export pipeline is doing now, per signal: items waiting in each batch queue,
when items were last exported, failed or dropped (wall-clock time, for people to read),
and the kind of the last failure with its time.

The self-metrics hooks fill it (``_self_metrics``: the exporter wrapper and the batch
processors it watches; :func:`count_pushes` for the metrics pusher), off the request
path; the debug endpoint ``/debug/telemetry`` reads it.  The counts themselves are the
self-metrics counters (``metrics.value``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Final

__all__ = [
    "OUTCOMES",
    "count_pushes",
    "forget",
    "record",
    "record_error",
    "snapshot",
    "watch_queue",
]

OUTCOMES: Final = ("exported", "failed", "dropped")

_lock: Final = threading.Lock()
_queues: dict[str, list[Callable[[], int]]] = {}
_last: dict[tuple[str, str], float] = {}
_errors: dict[str, tuple[float, str]] = {}


def watch_queue(signal: str, depth: Callable[[], int]) -> None:
    """Count ``depth()`` (items waiting in one batch queue) into ``signal`` 's queue depth."""
    with _lock:
        _queues.setdefault(signal, []).append(depth)


def record(signal: str, outcome: str) -> None:
    """Note that items of ``signal`` were just ``exported``, ``failed`` or ``dropped``."""
    _last[signal, outcome] = time.time()  # one dict store: atomic, no lock on this path


def record_error(signal: str, kind: str) -> None:
    """Note why an export of ``signal`` just failed: ``kind`` names the failure (an
    exception's type, a result), never its message (messages repeat URLs)."""
    _errors[signal] = (time.time(), kind)  # one dict store: atomic, no lock on this path


def count_pushes(
    signal: str, count: Callable[[str, str, float], None]
) -> Callable[[int, str | None], None]:
    """The metrics pusher's ``on_export(points, error)``: data points exported or failed,
    failed calls, when each happened and the kind of the last failure.  (The pusher is
    built before its setup's :func:`new_epoch` and stops at its ``shutdown()``, so no
    epoch is checked.)"""

    def pushed(points: int, error: str | None) -> None:
        if error is None:
            count(signal, "exported", points)
            record(signal, "exported")
            return
        count(signal, "failed", points)
        count(signal, "call_failed", 1)
        record(signal, "failed")
        record_error(signal, error)

    return pushed


def forget() -> None:
    """Start over (a new ``setup()``): no queues, no times, no errors."""
    with _lock:
        _queues.clear()
        _last.clear()
        _errors.clear()


def snapshot(
    signals: tuple[str, ...] = ("traces", "metrics", "logs"),
) -> dict[str, dict[str, object]]:
    """Per signal: ``queued`` (items waiting; ``None`` when no queue is watched),
    ``last_<outcome>_at`` (ISO-8601 UTC, ``None`` when it never happened) and
    ``last_error`` (``{"at", "kind"}`` of the last failure, ``None`` when none)."""
    with _lock:
        queues = {signal: list(depths) for signal, depths in _queues.items()}
    return {
        signal: {
            "queued": _total(queues.get(signal)),
            **{f"last_{outcome}_at": _when(_last.get((signal, outcome))) for outcome in OUTCOMES},
            "last_error": _error(_errors.get(signal)),
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


def _error(error: tuple[float, str] | None) -> dict[str, str | None] | None:
    return None if error is None else {"at": _when(error[0]), "kind": error[1]}


def _when(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, timezone.utc).isoformat(timespec="milliseconds")
