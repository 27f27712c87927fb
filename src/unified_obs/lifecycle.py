"""Shutdown under one deadline: LIFO user hooks, then every signal flushed in parallel.

Nothing here raises or waits past the deadline: each step runs in a daemon thread
and is abandoned (reported as ``"timeout"``) when its share of time is spent.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

__all__ = ["Inflight", "Outcome", "ShutdownManager", "ShutdownResult", "inflight", "run_parallel"]

Outcome = Literal["ok", "failed", "timeout", "error", "skipped"]
_log: Final = logging.getLogger("unified_obs")


@dataclass(frozen=True, slots=True)
class ShutdownResult:
    """What ``shutdown()`` did: an outcome per step and the time it took."""

    outcomes: Mapping[str, Outcome] = field(default_factory=lambda: MappingProxyType({}))
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every step finished successfully (or had nothing to do)."""
        return all(outcome in ("ok", "skipped") for outcome in self.outcomes.values())


def run_parallel(
    steps: Mapping[str, Callable[[float], bool]], timeout: float
) -> dict[str, Outcome]:
    """Run each ``step(timeout)`` in its own daemon thread; stop waiting at the deadline."""
    deadline = time.monotonic() + max(timeout, 0.0)
    outcomes: dict[str, Outcome] = {}
    threads = {name: _start(name, step, timeout, outcomes) for name, step in steps.items()}
    for name, thread in threads.items():
        thread.join(max(deadline - time.monotonic(), 0.0))
        outcomes.setdefault(name, "timeout")
    return dict(outcomes)


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
    ``exit``), so the shutdown sequence can wait until the process is idle."""

    __slots__ = ("_count", "_idle", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._count = 0

    @property
    def count(self) -> int:
        """Requests in progress now."""
        return self._count

    def enter(self) -> None:
        """A request started."""
        with self._lock:
            self._count += 1

    def exit(self) -> None:
        """A request finished (never goes below zero)."""
        with self._lock:
            self._count = max(self._count - 1, 0)
            if self._count == 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is in progress or ``timeout`` passes; True when idle."""
        with self._idle:
            return self._idle.wait_for(lambda: self._count == 0, timeout=max(timeout, 0.0))


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

    def on_shutdown(self, hook: ShutdownHook, *, name: str | None = None) -> ShutdownHook:
        """Register ``hook`` (sync or async, no arguments); usable as a decorator."""
        label = name or getattr(hook, "__qualname__", None) or repr(hook)
        self._hooks.append((f"hook:{label}", hook))
        return hook

    def run(self, signals: Mapping[str, Callable[[float], bool]], timeout: float) -> ShutdownResult:
        """Run the sequence once; later calls return the first result at once."""
        with self._lock:
            if self._result is not None:
                return self._result
            start = time.monotonic()
            outcomes: dict[str, Outcome] = {}
            for label, hook in reversed(self._hooks):
                left = timeout - (time.monotonic() - start)
                outcomes.update(run_parallel({label: _as_step(hook)}, left))
            left = timeout - (time.monotonic() - start)
            outcomes.update(run_parallel(signals, left))
            self._result = ShutdownResult(MappingProxyType(outcomes), time.monotonic() - start)
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
