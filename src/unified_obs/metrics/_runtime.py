"""Runtime metrics: GC pauses and event-loop lag as histograms, threads and asyncio tasks.

* ``unified_obs.gc.pause.duration{cpython.gc.generation}`` (s): how long each collection
  stopped the process.  The ``gc.callbacks`` hook only stores the pause in a preallocated
  ring (no lock, no metric call: a collection can start while any lock is held, a metric's
  included); a flush moves the ring into the histogram once a second and before every read
  of the values.  A forked child starts with an empty ring.
* ``unified_obs.asyncio.loop.lag`` (s): how late a timer the loop re-arms every
  ``lag_interval`` seconds ran, i.e. how long the loop was busy elsewhere; started in the
  loop by :func:`watch_event_loop` (the ASGI middleware does it at lifespan startup).
* ``unified_obs.asyncio.tasks``: a gauge of the watched loops' unfinished tasks.

Threads, CPU, memory, file descriptors and GC counts are the process metrics of
``_process``.  Semantic conventions have no GC-pause or loop-lag histogram; both names are
the library's own.
"""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import gc
import os
import signal
import sys
import threading
import time
import traceback
import weakref
from array import array
from collections.abc import Callable
from typing import Any, Final

from ._exposition import before_every_read

__all__ = [
    "GC_BUCKETS",
    "LAG_BUCKETS",
    "Runtime",
    "current",
    "flush",
    "restart_after_fork",
    "start",
    "stop",
    "watch_event_loop",
]

GC_BUCKETS: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
"""GC pause buckets (s): young collections take tens of microseconds, full ones up to seconds."""

LAG_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Event-loop lag buckets (s)."""

_RING: Final = 4096
"""Pauses kept between two flushes (one a second): more are counted in
``unified_obs.gc.pause.lost``, not measured."""


class _PauseRing:
    """Where the GC callback writes: fixed arrays, a write count, a read count."""

    def __init__(self) -> None:
        self.seconds = array("d", bytes(8 * _RING))
        self.generation = array("b", bytes(_RING))
        self.started = array("d", [0.0])
        self.written = 0
        self.read = 0

    def callback(self, phase: str, info: dict[str, Any]) -> None:
        """The ``gc.callbacks`` hook: two array writes, no lock, no call into metrics."""
        if phase == "start":
            self.started[0] = time.perf_counter()
            return
        slot = self.written % _RING
        self.seconds[slot] = time.perf_counter() - self.started[0]
        self.generation[slot] = info.get("generation", 0)
        self.written += 1

    def drain(self) -> tuple[list[tuple[int, float]], int]:
        """The pauses written since the last drain, and how many were overwritten."""
        end = self.written
        lost = max(end - self.read - _RING, 0)
        start = self.read + lost
        self.read = end
        return [
            (self.generation[i % _RING], self.seconds[i % _RING]) for i in range(start, end)
        ], lost

    def forget(self) -> None:
        """Start empty (a forked child: the parent's pauses are the parent's)."""
        self.read = self.written


def _hand_on(exc: BaseException) -> None:
    """Deliver again the signal whose handler raised ``exc``, from a thread of its own once
    the collection is over (1 ms later; still inside one, it is handed on again): its
    handler runs once more in the main thread, where what it raises reaches the program."""
    signum = _signal_of(exc)
    if signum is not None:
        threading.Thread(
            target=_deliver_soon, args=(signum,), name="unified_obs-signal", daemon=True
        ).start()


def _deliver_soon(signum: signal.Signals) -> None:
    time.sleep(0.001)  # the main thread leaves the collection: a signal made pending within
    _thread.interrupt_main(signum)  # it would be handled, and dropped, there again


def _signal_of(exc: BaseException) -> signal.Signals | None:
    """The signal whose Python handler raised ``exc`` (found on its traceback), else SIGINT
    for a ``KeyboardInterrupt`` (the default handler is not Python code); ``None`` for
    anything else."""
    raised_in = {frame.f_code for frame, _ in traceback.walk_tb(exc.__traceback__)}
    for signum in sorted(signal.valid_signals()):
        code = getattr(signal.getsignal(signum), "__code__", None)
        if code is not None and code in raised_in:
            return signal.Signals(signum)
    return signal.SIGINT if isinstance(exc, KeyboardInterrupt) else None


class Runtime:
    """The runtime instruments, the GC hook and the flush thread of this process."""

    def __init__(
        self,
        counter: Callable[..., Any],
        histogram: Callable[..., Any],
        gauge: Callable[..., Any],
        *,
        flush_interval: float = 1.0,
        lag_interval: float = 0.05,
    ) -> None:
        self._pauses = histogram(
            "unified_obs.gc.pause.duration",
            "Time the CPython garbage collector stopped the process, per collection.",
            labels=("cpython.gc.generation",),
            unit="s",
            buckets=GC_BUCKETS,
        )
        self._lag = histogram(
            "unified_obs.asyncio.loop.lag",
            "How late the event loop ran a timer: time spent on other work.",
            unit="s",
            buckets=LAG_BUCKETS,
        )
        self._tasks = gauge(
            "unified_obs.asyncio.tasks", "Unfinished asyncio tasks of the watched event loops.",
            unit="{task}", multiprocess_mode="liveall",
        )  # fmt: skip
        self._lost = counter(
            "unified_obs.gc.pause.lost",
            "GC pauses not measured: more than the ring holds between two flushes.",
            unit="{pause}",
        )
        self._by_generation = [self._pauses.labels(str(g)) for g in range(3)]
        self._ring = _PauseRing()
        self._flush_interval = flush_interval
        self.lag_interval = lag_interval
        self._loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        gc.callbacks.append(self._ring.callback)
        self._previous_hook = sys.unraisablehook
        sys.unraisablehook = self._hand_on_interrupts
        self.start()

    def start(self) -> None:
        """Start (or, in a forked child, restart with an empty ring) the flush thread."""
        self._ring.forget()
        self._loops = weakref.WeakSet()
        self._lock = threading.Lock()  # a fork taken mid-flush must not leave it held
        self._stop = threading.Event()
        thread = threading.Thread(target=self._run, name="unified_obs-runtime", daemon=True)
        thread.start()

    def stop(self) -> None:
        """Stop flushing and unhook from the GC."""
        self._stop.set()
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._ring.callback)
        if sys.unraisablehook == self._hand_on_interrupts:
            sys.unraisablehook = self._previous_hook

    def _hand_on_interrupts(self, unraisable: Any) -> None:
        """``sys.unraisablehook``: a signal's Python handler can run inside the GC hook (the
        interpreter handles pending signals at the start of any Python function), and
        CPython drops what a GC callback raises, so Ctrl-C's ``KeyboardInterrupt`` or a
        SIGTERM handler's ``SystemExit`` would be lost.  Those are handed on instead."""
        exc = unraisable.exc_value
        if unraisable.object == self._ring.callback and isinstance(
            exc, (KeyboardInterrupt, SystemExit)
        ):
            _hand_on(exc)
        else:
            self._previous_hook(unraisable)

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called (lag timers stop re-arming)."""
        return self._stop.is_set()

    def _run(self) -> None:
        stop = self._stop
        while not stop.wait(self._flush_interval):
            self.flush()

    def flush(self) -> None:
        """Move the stored GC pauses into the histogram; never raises."""
        with self._lock, contextlib.suppress(Exception):  # a metric error must not kill this
            pauses, lost = self._ring.drain()
            for generation, seconds in pauses:
                self._by_generation[min(generation, 2)].observe(seconds)
            if lost:
                self._lost.inc(lost)

    def watch_event_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Measure ``loop``'s lag and tasks from now on (once per loop; call in the loop)."""
        try:
            if loop in self._loops:
                return
            self._loops.add(loop)
        except TypeError:  # a loop type without weak references: no de-duplication
            pass
        _LagTimer(loop, self, os.getpid()).arm()

    def record_lag(self, seconds: float) -> None:
        """One lag observation (from the loop's timer)."""
        self._lag.observe(seconds)

    def record_tasks(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop's unfinished tasks, read in the loop's own thread."""
        self._tasks.set(len(asyncio.all_tasks(loop)))


class _LagTimer:
    """Re-arms itself every ``lag_interval`` on one loop; records how late it ran."""

    _TASKS_EVERY: Final = 20
    """Count tasks on every 20th tick (all_tasks walks every task)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, runtime: Runtime, pid: int) -> None:
        self._loop = loop
        self._runtime = runtime
        self._pid = pid
        self._due = 0.0
        self._ticks = 0

    def arm(self) -> None:
        """Schedule the next tick ``lag_interval`` from now."""
        self._due = self._loop.time() + self._runtime.lag_interval
        self._loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        if self._pid != os.getpid() or self._runtime.stopped:
            return  # a forked child's copy of the loop, or metrics reset: stop re-arming
        with contextlib.suppress(Exception):  # never raise into the application's loop
            self._runtime.record_lag(max(self._loop.time() - self._due, 0.0))
            self._ticks += 1
            if self._ticks % self._TASKS_EVERY == 1:
                self._runtime.record_tasks(self._loop)
        self.arm()


_live: list[Runtime] = []
"""The process's runtime metrics once ``setup()`` started them (at most one)."""


def start(
    counter: Callable[..., Any], histogram: Callable[..., Any], gauge: Callable[..., Any]
) -> None:
    """Start the runtime metrics (``setup()``; a second call keeps the first)."""
    if not _live:
        _live.append(Runtime(counter, histogram, gauge))
        before_every_read(flush)


def current() -> Runtime | None:
    """The running runtime metrics, if started."""
    return _live[0] if _live else None


def flush() -> None:
    """Record the GC pauses stored so far (before every read of the values)."""
    for runtime in _live:
        runtime.flush()


def stop() -> None:
    """Stop and forget the runtime metrics (``metrics.reset()``)."""
    while _live:
        _live.pop().stop()


def restart_after_fork() -> None:
    """In a forked child: a new flush thread, an empty GC ring, loops to watch anew."""
    for runtime in _live:
        runtime.start()


def watch_event_loop(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Measure the lag and tasks of ``loop`` (default: the running one); a no-op before
    ``setup()`` or outside a running loop, and never raises."""
    with contextlib.suppress(Exception):
        runtime = current()
        if runtime is not None:
            runtime.watch_event_loop(loop or asyncio.get_running_loop())
