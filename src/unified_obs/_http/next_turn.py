"""Work that may wait for the event loop's next turn, then done in one batch.

A request's span end, duration metric and access line need not hold up the next request
on the loop.  The ASGI middleware hands them over here once the last body chunk is sent;
at the loop's next turn they run back to back, each in a copy of its request's context,
and the turn's responses leave together; so do their log lines, in one write
(:func:`~unified_obs.logs._stdout_sink.hold`).  The instructions are the same, the CPU time is
not: ``benchmarks.wire`` measured 7-21 % less server CPU per request in alternating runs
(most likely the interpreter's code staying warm in the CPU, and ``wrk`` woken less).

Everything handed over runs exactly once: at the next turn of the loop that handed it
over; earlier through :func:`run_pending` (``/metrics`` and ``metrics.value``, which
this module registers with :func:`~unified_obs.metrics._exposition.before_every_read`; the
``testing`` readers, ``force_flush``, shutdown); or at once when no loop runs in the
thread or :data:`MAX_PENDING` are already waiting.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from contextvars import Context, copy_context
from typing import Final

from ..logs import _stdout_sink
from ..metrics._exposition import before_every_read

__all__ = ["MAX_PENDING", "defer", "run_pending"]

MAX_PENDING: Final = 4096
"""Past this many waiting (a caller that never lets its loop turn), work runs at once."""

_pending: deque[tuple[Context, Callable[[], None]]] = deque()


class _Turn(threading.local):
    """The loop, in this thread, that has a :func:`run_pending` scheduled for its next turn.
    While it runs, the turn's later hand-overs go by it without asking for the running
    loop (so a loop stopped here and run by another thread before its turn would still
    collect this thread's work, each item once, in its own context).  A loop closed
    before that turn is replaced by the thread's next loop, which schedules its own (and
    runs what the closed one left)."""

    loop: asyncio.AbstractEventLoop | None = None


_turn = _Turn()


def defer(work: Callable[[], None]) -> None:
    """Run ``work`` (which must not raise) in a copy of the current context, at the
    running loop's next turn."""
    loop = _turn.loop
    if loop is None or not loop.is_running():  # the turn's first hand-over in this thread
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop in this thread: nothing to wait for
            work()
            return
        _turn.loop = loop
        loop.call_soon(_at_next_turn)
    _pending.append((copy_context(), work))
    if len(_pending) > MAX_PENDING:
        run_pending()


def _at_next_turn() -> None:
    _turn.loop = None
    run_pending()


def run_pending(deadline: float = math.inf) -> None:
    """Run everything handed over so far, from any thread (each item runs once); the
    log lines they write leave in one write when the batch ends.

    ``deadline`` (a ``time.monotonic()`` value: a flush's or shutdown's) stops it between
    two items; what is left runs at its loop's next turn."""
    if not _pending:
        return
    bounded = deadline != math.inf  # no clock read per item without a deadline
    holding = _stdout_sink.hold()
    try:
        while _pending:
            if bounded and not time.monotonic() < deadline:  # NaN: no time at all
                return
            try:
                context, work = _pending.popleft()
            except IndexError:  # another thread took the last one
                return
            context.run(work)
    finally:
        if holding:
            _stdout_sink.release()


def _forget_in_child() -> None:
    _pending.clear()  # the parent's requests: the parent records them
    _turn.loop = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
before_every_read(run_pending)  # a scrape or metrics.value() counts the requests waiting here
