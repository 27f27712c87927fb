"""Warm-up tasks the startup probe waits for (connection pools, caches ...).

Each task runs once, in the background, when the application reports it has started:
an async task on the application's loop, a sync one in a daemon thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any, Literal

from ..errors import ConfigError
from ._check_runner import CheckResult

__all__ = ["Warmups"]

State = Literal["pending", "running", "ok", "failed"]


class Warmups:
    """Registered warm-up tasks and how far each got."""

    def __init__(self) -> None:
        self._fns: dict[str, Callable[[], Any]] = {}
        self._state: dict[str, State] = {}
        self._lock = threading.Lock()

    def add(self, name: str, fn: Callable[[], Any]) -> None:
        """Register ``fn`` under ``name`` (``ConfigError`` when the name is taken)."""
        with self._lock:
            if name in self._fns:
                raise ConfigError("name", name, "a warm-up name not registered yet")
            self._fns[name] = fn
            self._state[name] = "pending"

    def results(self) -> dict[str, CheckResult]:
        """One entry per warm-up, ``warmup:<name>``, for the startup report."""
        return {
            f"warmup:{name}": CheckResult("pass") if state == "ok" else CheckResult("fail", state)
            for name, state in list(self._state.items())
        }

    def launch(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Start every pending warm-up in the background."""
        with self._lock:
            pending = [name for name, state in self._state.items() if state == "pending"]
            for name in pending:
                self._state[name] = "running"
        for name in pending:
            future = _start(self._fns[name], loop, name)
            future.add_done_callback(functools.partial(self._done, name))

    def _done(self, name: str, future: concurrent.futures.Future[Any]) -> None:
        failed = future.cancelled() or future.exception() is not None
        self._state[name] = "failed" if failed else "ok"
        if failed:
            _log_failure(name, None if future.cancelled() else future.exception())


def _start(
    fn: Callable[[], Any], loop: asyncio.AbstractEventLoop | None, name: str
) -> concurrent.futures.Future[Any]:
    if inspect.iscoroutinefunction(fn) and loop is not None and loop.is_running():
        return asyncio.run_coroutine_threadsafe(fn(), loop)
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        future.set_running_or_notify_cancel()
        try:
            result = fn()
            if inspect.isawaitable(result):
                result = asyncio.run(_await(result))
            future.set_result(result)
        except BaseException as exc:  # recorded as a failed warm-up
            future.set_exception(exc)

    threading.Thread(target=run, name=f"unified_obs-warmup-{name}", daemon=True).start()
    return future


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _log_failure(name: str, error: BaseException | None) -> None:
    try:
        from ..logs import get_logger

        get_logger("unified_obs.health").error("health.warmup.failed", warmup=name, exc_info=error)
    except Exception:  # logging must never break start-up
        pass
