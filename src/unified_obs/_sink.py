"""Where rendered log lines go: the *current* ``sys.stdout``, flushed off the hot path.

Writing a line is a buffered write; a daemon thread flushes at most ``FLUSH_INTERVAL``
later, and error-level lines (and ``close()``) flush at once.  Paying one flush system
call per line would double the cost of a log line in a busy server.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Final

__all__ = ["FLUSH_INTERVAL", "LineSink"]

FLUSH_INTERVAL: Final = 0.1
_state: dict[str, object] = {"dirty": False, "flusher": None}


def _flush() -> None:
    with contextlib.suppress(Exception):  # closed or broken stdout: nothing to do
        sys.stdout.flush()


def _flush_loop(stop: threading.Event) -> None:
    while not stop.wait(FLUSH_INTERVAL):
        if _state["dirty"]:
            _state["dirty"] = False
            _flush()


def _ensure_flusher() -> None:
    if _state["flusher"] is None:
        stop = threading.Event()
        thread = threading.Thread(
            target=_flush_loop, args=(stop,), name="unified_obs-log-flush", daemon=True
        )
        _state["flusher"] = stop
        thread.start()


def _forget_flusher_in_child() -> None:
    _state["flusher"] = None  # the thread did not survive fork(); start one on next write


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_flusher_in_child)


class LineSink:
    """A structlog "logger" that writes each rendered record as one line to stdout."""

    __slots__ = ("_lock", "closed")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.closed = False

    def msg(self, line: str | bytes) -> None:
        """Write ``line``; it reaches the stream within ``FLUSH_INTERVAL``."""
        if self.closed:
            return
        text = line.decode() if isinstance(line, bytes) else line
        with self._lock:
            try:
                sys.stdout.write(text + "\n")
            except Exception:  # closed, broken or missing stdout: drop, never raise
                return
        _state["dirty"] = True
        if _state["flusher"] is None:
            _ensure_flusher()

    def msg_now(self, line: str | bytes) -> None:
        """Write ``line`` and flush at once (errors must not wait)."""
        self.msg(line)
        _flush()

    def close(self) -> None:
        """Flush what was written and drop every later line."""
        _flush()
        self.closed = True

    debug = info = warning = warn = log = msg
    error = err = exception = critical = fatal = msg_now
