"""A logging filter that keeps the OpenTelemetry SDK's repeated warnings from flooding.

Under overload the SDK logs "Queue full, dropping Span." for every dropped span and an
exporter logs every retry: one line per event, exactly when the process can least afford
it.  Each distinct message (logger + template) passes once per ``interval``; the next one
that passes carries ``suppressed=N``.  Exact counts are on ``/metrics`` (self-metrics).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

__all__ = ["RateLimitFilter"]

_MAX_KEYS: Final = 512


class RateLimitFilter(logging.Filter):
    """Pass each (logger, message template) at most once per ``interval`` seconds, for
    loggers under ``prefix``; everything else passes untouched."""

    def __init__(
        self,
        prefix: str = "opentelemetry",
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._clock = clock
        self._prefix = prefix
        self._interval = interval
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], list[float]] = {}  # key -> [last, suppressed]

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is written (adding ``suppressed`` when some were held back)."""
        if not record.name.startswith(self._prefix):
            return True
        key = (record.name, str(record.msg))
        now = self._clock()
        with self._lock:
            state = self._seen.get(key)
            if state is None:
                if len(self._seen) < _MAX_KEYS:
                    self._seen[key] = [now, 0]
                return True
            if now - state[0] < self._interval:
                state[1] += 1
                return False
            suppressed, state[0], state[1] = int(state[1]), now, 0
        if suppressed:
            record.suppressed = suppressed
        return True
