"""SIGTERM/SIGINT handling chained to the server's own handler (re-exported by lifecycle).

The handler itself does nothing that could deadlock (Python locks are not re-entrant
and the interrupted code may hold the logging or metrics locks): it records the time,
calls ``begin_drain`` (which only sets a flag: readiness -> 503 at once) and writes one
byte to a pipe.  A watcher thread does the rest: waits the drain delay while the
listener keeps serving, then passes the signal on to the handler that was there
before (uvicorn's, gunicorn's ...) by re-sending it to the main thread.  When that
previous handler is the default action (a plain script), the shutdown sequence runs
first, because the default action ends the process.

A second signal during the drain exits at once (status 128 + signal) -- if it comes at
least ``REPEAT_AFTER`` seconds after the first: a signal sent to the whole process group
and forwarded again by a master process (gunicorn) is one event, not a request to
hurry.  A signal after the sequence finished gets the default action (uvicorn re-raises
SIGTERM at exit to end "killed by SIGTERM").
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from types import CodeType, FrameType
from typing import Any, Final

__all__ = ["REPEAT_AFTER", "Signals", "in_signal_handler", "state"]

Handler = Callable[[int, FrameType | None], Any] | int | None
REPEAT_AFTER: Final = 1.0
"""Seconds after the first signal from which another one means "exit now"."""


class Signals:
    """Process-wide signal state (one instance: :data:`state`)."""

    def __init__(self) -> None:
        self.previous: dict[int, Handler] = {}
        self.wanted: tuple[int, ...] = ()
        self.received: int | None = None
        self.received_at: float | None = None
        self.redeliver: set[int] = set()
        self.begin_drain: Callable[[], None] | None = None
        self.drain_delay = 0.0
        self.drain_timeout = 0.0
        self.run_sequence: Callable[[], object] = lambda: None
        self.sequence_done = threading.Event()
        self._pipe: tuple[int, int] | None = None
        self._pid = 0

    # -- installation (main thread only) -------------------------------------------------

    def install(self, signals: Iterable[int]) -> bool:
        """Chain our handler in front of the current ones; False off the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return False
        self.wanted = tuple(signals)
        self._ensure_watcher()
        for signum in self.wanted:
            current = signal.getsignal(signum)
            if current is on_signal or current == signal.SIG_IGN:
                continue  # ours already, or deliberately ignored by the application
            self.previous[signum] = current
            signal.signal(signum, on_signal)
        return True

    def reinstall(self) -> None:
        """Chain again if a server replaced our handler after ``install`` (uvicorn.run)."""
        if self.wanted and self.received is None:
            self.install(self.wanted)

    def uninstall(self) -> None:
        """Put the previous handlers back where ours is still installed."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, previous in self.previous.items():
            if signal.getsignal(signum) is on_signal:
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self.previous.clear()
        self.wanted = ()

    def _ensure_watcher(self) -> None:
        if self._pipe is not None and self._pid == os.getpid():
            return
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        self._pipe, self._pid = (read_fd, write_fd), os.getpid()
        threading.Thread(
            target=_watch, args=(self, read_fd), name="unified_obs-signals", daemon=True
        ).start()

    def wake(self, message: bytes) -> None:
        """Hand ``message`` to the watcher thread (async-signal-safe: one ``write``)."""
        if self._pipe is None:
            return
        with contextlib.suppress(OSError):  # pipe full or closed: the watcher is busy or gone
            os.write(self._pipe[1], message)


state: Final = Signals()


def on_signal(signum: int, frame: FrameType | None) -> None:
    """The installed handler: flags and one pipe write only."""
    if signum in state.redeliver:
        state.redeliver.discard(signum)
        _chain(signum, frame)
    elif state.sequence_done.is_set():  # all done (uvicorn re-raises at exit): default action
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    elif state.received is None:
        state.received, state.received_at = signum, time.monotonic()
        if state.begin_drain is not None:
            state.begin_drain()
        state.wake(b"1")
    elif time.monotonic() - (state.received_at or 0.0) >= REPEAT_AFTER:
        state.wake(b"2")
    # else: the same event delivered twice (to the whole process group and again by a
    # master process forwarding it, as gunicorn does): not a request to hurry.


def _chain(signum: int, frame: FrameType | None) -> None:
    previous = state.previous.get(signum)
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:  # the default action: end the process as it would have
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _watch(signals: Signals, read_fd: int) -> None:
    while True:
        try:
            message = os.read(read_fd, 1)
        except OSError:
            return
        if not message:
            return
        if message == b"1":
            threading.Thread(target=_drain, args=(signals,), daemon=True).start()
        elif message == b"2" and signals.received is not None:
            os._exit(128 + signals.received)  # a second signal: leave now, as asked


def _drain(signals: Signals) -> None:
    """Keep serving for the drain delay, then pass the signal on (see module docstring)."""
    signum, started = signals.received, signals.received_at
    if signum is None or started is None:
        return
    _sleep_until(started + signals.drain_delay)
    if callable(signals.previous.get(signum)):
        _pass_on(signum)
        # The server now stops accepting and finishes its requests; its own shutdown path
        # (ASGI lifespan, atexit) runs the sequence.  Run it ourselves if none did in time.
        fallback = started + signals.drain_delay + signals.drain_timeout
        signals.sequence_done.wait(max(fallback - time.monotonic(), 0.0))
        signals.run_sequence()
    else:
        signals.run_sequence()
        _pass_on(signum)


def _pass_on(signum: int) -> None:
    """Re-send ``signum`` to the main thread, where our handler chains it."""
    if signal.getsignal(signum) is not on_signal:
        return  # someone replaced our handler meanwhile: nothing left to chain
    state.redeliver.add(signum)
    signal.pthread_kill(threading.main_thread().ident or 0, signum)


def _sleep_until(moment: float) -> None:
    threading.Event().wait(max(moment - time.monotonic(), 0.0))


def in_signal_handler() -> bool:
    """Whether the calling code runs inside a Python signal handler (on the main thread).

    A handler runs between two bytecodes of whatever the main thread was doing, so that
    code may hold any lock (the log sink's, the shutdown sequence's): a caller that sees
    True must not take one.  Python has no flag for it; a handler's frame is on the stack
    then, so this looks for the code of any installed handler among the callers.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    handlers = {code for code in map(_handler_code, _installed_handlers()) if code is not None}
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code in handlers:
            return True
        frame = frame.f_back
    return False


def _installed_handlers() -> Iterable[Handler]:
    for signum in signal.valid_signals():
        with contextlib.suppress(ValueError, OSError):  # not a catchable signal here
            yield signal.getsignal(signum)


def _handler_code(handler: object) -> CodeType | None:
    """The code object a Python handler runs (functions, methods, partials, callables)."""
    while isinstance(handler, functools.partial):
        handler = handler.func
    handler = getattr(handler, "__func__", handler)  # a bound method
    code = getattr(handler, "__code__", None)
    if code is None and callable(handler) and not isinstance(handler, int):
        call = inspect.getattr_static(type(handler), "__call__", None)  # a callable object
        code = getattr(call, "__code__", None)
    return code if isinstance(code, CodeType) else None


def _after_fork() -> None:
    """A forked child has no watcher thread and has received nothing yet."""
    state._pipe = None
    state.received = state.received_at = None
    state.redeliver.clear()
    state.sequence_done = threading.Event()


os.register_at_fork(after_in_child=_after_fork)
