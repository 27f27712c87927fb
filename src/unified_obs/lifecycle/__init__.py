"""Shutdown under one deadline: drain, LIFO user hooks, then every signal flushed in parallel.

Nothing here raises or waits past the deadline: each step runs in a daemon thread
and is abandoned (reported as ``"timeout"``) when its share of time is spent.

The graceful sequence (``set_shutdown_sequence`` / ``run_shutdown_sequence``): readiness
fails at once; after a signal, the listener keeps serving for ``drain_delay``; in-flight
requests get up to ``drain_timeout``; then hooks and flushes share what is left of the
one deadline.  It runs once, whoever asks first: the signal path, ASGI lifespan
shutdown, ``atexit``.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

from .._lockfree import peek
from ._os_signals import in_signal_handler
from ._os_signals import state as _signals

__all__ = [
    "Inflight",
    "Outcome",
    "ShutdownManager",
    "ShutdownResult",
    "draining_since",
    "graceful_sequence",
    "in_signal_handler",
    "inflight",
    "install_signal_handlers",
    "reinstall_signal_handlers",
    "reset",
    "run_parallel",
    "run_shutdown_sequence",
    "set_shutdown_sequence",
    "uninstall_signal_handlers",
]

Outcome = Literal["ok", "failed", "timeout", "error", "skipped", "pending"]
"""``pending``: the sequence was already running on the thread a signal interrupted; it
goes on when the signal handler returns, and its first caller gets the result."""
_log: Final = logging.getLogger("unified_obs")


@dataclass(frozen=True, slots=True)
class ShutdownResult:
    """What ``shutdown()`` did: an outcome per step, the time it took, and where every
    span and log record went."""

    outcomes: Mapping[str, Outcome] = field(default_factory=lambda: MappingProxyType({}))
    elapsed: float = 0.0
    counts: Mapping[str, Mapping[str, int]] = field(default_factory=lambda: MappingProxyType({}))
    """Per signal with a batch processor (``traces``, ``logs``): items ``exported``,
    ``failed``, ``dropped`` and still ``queued`` when the result was made; after the
    flush they add up to every item the process produced."""

    @property
    def ok(self) -> bool:
        """True when every step finished successfully (or had nothing to do)."""
        return all(outcome in ("ok", "skipped") for outcome in self.outcomes.values())


def run_parallel(
    steps: Mapping[str, Callable[[float], bool]], timeout: float
) -> dict[str, Outcome]:
    """Run each ``step(timeout)`` in its own daemon thread; stop waiting at the deadline."""
    timeout = _usable(timeout)
    deadline = time.monotonic() + timeout
    outcomes: dict[str, Outcome] = {}
    threads = {name: _start(name, step, timeout, outcomes) for name, step in steps.items()}
    for name, thread in threads.items():
        thread.join(max(deadline - time.monotonic(), 0.0))
        outcomes.setdefault(name, "timeout")
    return dict(outcomes)


def _usable(timeout: float) -> float:
    """A wait the threading primitives accept: NaN and negatives become 0, infinity the
    longest wait ``threading`` allows (``join(nan)`` or ``join(inf)`` would raise)."""
    if not timeout >= 0.0:  # NaN fails every comparison
        return 0.0
    return min(float(timeout), threading.TIMEOUT_MAX / 2, 1e9)


def _start(
    name: str, step: Callable[[float], bool], timeout: float, outcomes: dict[str, Outcome]
) -> threading.Thread:
    def run() -> None:
        try:
            outcomes[name] = "ok" if step(timeout) is not False else "failed"
        except Exception:
            _log.warning("unified_obs: shutdown step %s raised", name, exc_info=True)
            outcomes[name] = "error"

    thread = threading.Thread(target=run, name=f"unified_obs-shutdown-{name}", daemon=True)
    thread.start()
    return thread


class Inflight:
    """Counts requests and calls in progress (middleware and interceptors call ``enter`` and
    ``exit``), so the shutdown sequence can wait until the process is idle.

    Two ``itertools.count`` objects tick without a lock (each tick is one C call, atomic
    under the GIL): ``enter`` *is* the entries' tick, and ``exit`` takes the lock only when
    a drain is waiting to be woken."""

    __slots__ = ("_entered", "_exited", "_idle", "_waiting", "enter")

    def __init__(self) -> None:
        self._idle = threading.Condition(threading.Lock())
        self._waiting = 0  # threads in wait_idle: only they need a wake-up
        self.reset()

    def reset(self) -> None:
        """Count from zero again (tests)."""
        self._entered = itertools.count()
        self._exited = itertools.count()
        self.enter: Callable[[], int] = self._entered.__next__
        """A request started."""

    @property
    def count(self) -> int:
        """Requests in progress now (never below zero).  Exits are read before entries:
        a request entering and another leaving between the two reads can then only make
        the count too high for an instant, never too low, so a drain never sees a busy
        process as idle."""
        exited = peek(self._exited)
        return max(peek(self._entered) - exited, 0)

    def exit(self) -> None:
        """A request finished (pairs with one ``enter``: the middleware and interceptors
        call it in ``finally`` blocks; ``count`` never shows an unpaired exit below 0)."""
        next(self._exited)
        if self._waiting:
            with self._idle:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is in progress or ``timeout`` passes; True when idle."""
        with self._idle:
            self._waiting += 1
            try:
                return self._idle.wait_for(lambda: self.count == 0, timeout=max(timeout, 0.0))
            finally:
                self._waiting -= 1


inflight: Final = Inflight()
"""The process-wide in-flight counter used by the middleware, interceptors and shutdown."""

ShutdownHook = Callable[[], Any]


class ShutdownManager:
    """Runs user hooks (LIFO) and then the signals' flushes, once, inside one deadline."""

    def __init__(self) -> None:
        self._hooks: list[tuple[str, ShutdownHook]] = []
        self._lock = threading.Lock()
        self._result: ShutdownResult | None = None

    @property
    def done(self) -> bool:
        """Whether the sequence has run."""
        return self._result is not None

    @property
    def running(self) -> bool:
        """Whether some thread is running the sequence now."""
        return self._lock.locked() and self._result is None

    def on_shutdown(self, hook: ShutdownHook, *, name: str | None = None) -> ShutdownHook:
        """Register ``hook`` (sync or async, no arguments); usable as a decorator."""
        label = name or getattr(hook, "__qualname__", None) or repr(hook)
        self._hooks.append((f"hook:{label}", hook))
        return hook

    def run(
        self,
        signals: Mapping[str, Callable[[float], bool]],
        timeout: float,
        *,
        counts: Callable[[], Mapping[str, Mapping[str, int]]] | None = None,
        started: float | None = None,
    ) -> ShutdownResult:
        """Run the sequence once; later calls return the first result at once.

        ``counts`` (read after the flushes) fills the result's per-signal item counts.
        ``started`` (``time.monotonic()``, default now) is when the caller's deadline
        began: ``timeout`` counts from it, and so does the result's ``elapsed``."""
        with self._lock:
            if self._result is not None:
                return self._result
            start = time.monotonic() if started is None else started
            outcomes: dict[str, Outcome] = {}
            for label, hook in reversed(self._hooks):
                left = timeout - (time.monotonic() - start)
                outcomes.update(run_parallel({label: _as_step(hook)}, left))
            left = timeout - (time.monotonic() - start)
            outcomes.update(run_parallel(signals, left))
            elapsed = time.monotonic() - start
            tally = MappingProxyType(dict(counts() if counts is not None else {}))
            self._result = ShutdownResult(MappingProxyType(outcomes), elapsed, tally)
            return self._result


def _as_step(hook: ShutdownHook) -> Callable[[float], bool]:
    def step(timeout: float) -> bool:
        result = hook()
        if inspect.isawaitable(result):
            asyncio.run(_await(result))
        return True

    return step


async def _await(awaitable: Any) -> None:
    await awaitable


# -- the graceful shutdown sequence ------------------------------------------------------

Sequence = Callable[[], ShutdownResult]
_sequence: dict[str, Sequence] = {}
_result: dict[str, ShutdownResult] = {}
_sequence_lock: Final = threading.Lock()


def set_shutdown_sequence(
    sequence: Sequence | None,
    *,
    begin_drain: Callable[[], None] | None = None,
    drain_delay: float = 0.0,
    drain_timeout: float = 0.0,
) -> None:
    """Register the live setup's sequence (``None`` clears it).

    ``begin_drain`` must be safe inside a signal handler (set a flag, nothing more).
    ``drain_delay`` and ``drain_timeout`` drive the signal path (see ``_signals``).
    """
    with _sequence_lock:
        _result.clear()
        _sequence.clear()
        if sequence is not None:
            _sequence["fn"] = sequence
    _signals.begin_drain = begin_drain
    _signals.drain_delay, _signals.drain_timeout = drain_delay, drain_timeout
    _signals.run_sequence = run_shutdown_sequence
    _signals.sequence_done.clear()


def run_shutdown_sequence() -> ShutdownResult | None:
    """Run the registered sequence once (bounded); later calls return its result.

    ``None`` when no sequence is registered (``setup()`` was never called).  Concurrent
    callers wait for the one run in progress.
    """
    with _sequence_lock:
        sequence = _sequence.get("fn")
        if sequence is None or "result" in _result:
            return _result.get("result")
        try:
            _result["result"] = sequence()
        except Exception:  # the sequence is built not to raise; never let it reach the app
            _log.warning("unified_obs: shutdown sequence raised", exc_info=True)
            _result["result"] = ShutdownResult(MappingProxyType({"sequence": "error"}))
        _signals.sequence_done.set()
        return _result["result"]


def draining_since() -> float | None:
    """``time.monotonic()`` when the first SIGTERM/SIGINT arrived, or ``None``."""
    return _signals.received_at


def graceful_sequence(
    *,
    begin_drain: Callable[[], None],
    close: Callable[[float], ShutdownResult],
    drain_delay: float,
    drain_timeout: float,
    shutdown_timeout: float,
) -> Sequence:
    """The standard sequence: drain (503), delay, in-flight wait, then ``close(timeout)``.

    One deadline: ``drain_delay + drain_timeout + shutdown_timeout`` from the signal (or
    from the call when no signal came; the delay, which only matters while a listener is
    open, is then skipped).  ``close`` gets ``shutdown_timeout`` (what is left of the
    deadline, if less).
    """

    def sequence() -> ShutdownResult:
        begin_drain()
        signalled = draining_since()
        start = time.monotonic() if signalled is None else signalled
        delay = drain_delay if signalled is not None else 0.0
        _sleep_until(start + delay)
        idle = inflight.wait_idle(start + delay + drain_timeout - time.monotonic())
        deadline = start + delay + drain_timeout + shutdown_timeout
        closed = close(min(shutdown_timeout, max(deadline - time.monotonic(), 0.0)))
        outcomes: dict[str, Outcome] = {"inflight": "ok" if idle else "timeout"}
        outcomes.update(closed.outcomes)
        return ShutdownResult(
            MappingProxyType(outcomes), time.monotonic() - start, counts=closed.counts
        )

    return sequence


def _sleep_until(moment: float) -> None:
    threading.Event().wait(max(moment - time.monotonic(), 0.0))


def install_signal_handlers(
    signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT),
) -> bool:
    """Chain the graceful sequence in front of the current SIGTERM/SIGINT handlers.

    Never replaces a handler: the previous one (uvicorn's, gunicorn's, the default) runs
    after the drain delay.  Returns False (nothing installed) off the main thread.
    """
    return _signals.install(signals)


def reinstall_signal_handlers() -> None:
    """Chain again if a server replaced our handlers after setup (main thread only)."""
    _signals.reinstall()


def uninstall_signal_handlers() -> None:
    """Put back the handlers that were there before ``install_signal_handlers``."""
    _signals.uninstall()


def reset() -> None:
    """Forget the sequence and any received signal; restore signal handlers (tests)."""
    set_shutdown_sequence(None)
    uninstall_signal_handlers()
    _signals.received = _signals.received_at = None
    _signals.redeliver.clear()
    inflight.reset()
