"""Where rendered log lines go: the *current* ``sys.stdout``, flushed off the hot path.

Writing a line is a buffered write; a daemon thread flushes at most ``FLUSH_INTERVAL``
later, and error-level lines (and ``close()``) flush at once.  Paying one flush system
call per line would double the cost of a log line in a busy server.

While :func:`hold` is in force (the event loop's batch of recorded requests, see
:mod:`~unified_obs._http.next_turn`), lines are held and written together in one call when it
ends: with ``PYTHONUNBUFFERED=1`` (common in container images) ``sys.stdout`` makes a
``write`` system call of every call, so a turn's access lines cost one instead of one
each.  An error-level line writes what is held, then itself, at once.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Final

__all__ = ["CLOSE_WAIT", "FLUSH_INTERVAL", "LineSink", "hold", "release"]

FLUSH_INTERVAL: Final = 0.1
CLOSE_WAIT: Final = 0.25
"""Seconds ``close()`` waits for a line being written.  A write holds the lock for a
buffered copy; longer means the writer is stuck (a full pipe) or was interrupted by the
signal handler that is closing us: waiting for it could then last forever."""
_state: dict[str, object] = {"dirty": False, "flusher": None}
_held: list[str] | None = None
"""Lines held for one write, from :func:`hold` to :func:`release` (``None``: write at once)."""
_lock = threading.Lock()  # one line, or one held batch, per write call


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


def _write(text: str) -> None:
    """Write ``text`` to the current stdout (the caller holds ``_lock``); never raises."""
    try:
        sys.stdout.write(text)
    except Exception:  # closed, broken or missing stdout: drop, never raise
        return
    _state["dirty"] = True
    if _state["flusher"] is None:
        _ensure_flusher()


def _as_text(line: str | bytes) -> str:
    return (line.decode() if isinstance(line, bytes) else line) + "\n"


def hold() -> bool:
    """Hold the lines written from now on (by any thread) until :func:`release`;
    ``False`` when lines are held already (the caller must not release then)."""
    global _held
    with _lock:
        if _held is not None:
            return False
        _held = []
        return True


def release() -> None:
    """Write the held lines in one call and write every later line at once again."""
    global _held
    with _lock:
        _write_held()
        _held = None


def _write_held() -> None:
    """Write what is held so far, and go on holding (the caller holds ``_lock``)."""
    if _held:
        _write("".join(_held))
        _held.clear()


def _forget_in_child() -> None:
    global _held
    _state["flusher"] = None  # the thread did not survive fork(); start one on next write
    _held = None  # the parent writes the lines it held


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


class LineSink:
    """A structlog "logger" that writes each rendered record as one line to stdout."""

    __slots__ = ("closed",)

    def __init__(self) -> None:
        self.closed = False

    def msg(self, line: str | bytes) -> None:
        """Write ``line``; it reaches the stream within ``FLUSH_INTERVAL``."""
        if self.closed:
            return
        text = _as_text(line)
        with _lock:
            if _held is not None:
                _held.append(text)
            else:
                _write(text)

    def msg_now(self, line: str | bytes) -> None:
        """Write what is held, then ``line``, and flush at once (errors must not wait)."""
        if self.closed:
            return
        text = _as_text(line)
        with _lock:
            _write_held()
            _write(text)
        _flush()

    def close(self) -> None:
        """Write what is held, flush what was written, and drop every later line.

        Never blocks for long: when the lock stays taken for ``CLOSE_WAIT`` (a stuck
        write, or one a signal handler interrupted on this very thread), the sink just
        closes; the line being written still goes out when its writer goes on."""
        self.closed = True
        if not _lock.acquire(timeout=CLOSE_WAIT):
            return  # flushing now would wait on the stream that writer holds
        try:
            _write_held()
        finally:
            _lock.release()
        _flush()

    debug = info = warning = warn = log = msg
    error = err = exception = critical = fatal = msg_now
