"""Health checks and probe semantics: the ``HealthRegistry`` behind ``tel.health``.

    tel.health.add_check("db", ping_db, timeout=0.5)        # readiness by default
    tel.health.add_warmup("cache", fill_cache)               # startup waits for it

    @tel.health.check("disk", kind="liveness")
    def disk_writable() -> bool: ...

Liveness: the process can make progress (its checks only, plus an event-loop heartbeat
once the loop is known); it never looks at dependencies or the collector.  Startup:
``mark_started()`` was called, every warm-up finished and every startup check passes;
once passed it stays passed.  Readiness: startup passed, no critical readiness check
fails, and the process is not draining.  Probing never raises and never waits past
the slowest check's timeout.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, TypeVar

from .. import lifecycle
from ..errors import ConfigError
from . import _check_runner
from ._check_runner import KINDS, Check, CheckKind, CheckResult, Status, wait, wait_async
from ._warmup import Warmups

__all__ = [
    "CheckKind",
    "CheckResult",
    "HealthRegistry",
    "HealthReport",
    "Status",
    "default_registry",
    "reset",
]

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_TIMEOUT: Final = 0.8
"""Seconds a check may take: under the kubelet's default probe timeout of 1 s."""
LOOP_MAX_LAG: Final = 5.0
"""Seconds the event loop may stay unresponsive before liveness fails."""
LOOP_BEAT: Final = 0.5
"""Seconds between two heartbeats on the event loop (well under ``LOOP_MAX_LAG``)."""


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The answer to one probe: overall status, per-check results and why it failed."""

    kind: CheckKind
    status: Status
    checks: Mapping[str, CheckResult] = field(default_factory=lambda: MappingProxyType({}))
    reason: str | None = None  # "starting" or "draining" when the gate failed

    @property
    def ok(self) -> bool:
        """True for "pass" and "warn" (HTTP 200), False for "fail" (HTTP 503)."""
        return self.status != "fail"


class HealthRegistry:
    """Checks, warm-ups and the started/draining state of this process."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}
        self._warmups = Warmups()
        self._started = False
        self._startup_passed = False
        self._draining = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def add_check(
        self,
        name: str,
        fn: Callable[[], Any],
        kind: CheckKind = "readiness",
        *,
        timeout: float = DEFAULT_TIMEOUT,
        critical: bool = True,
        success_ttl: float = 1.0,
        failure_ttl: float = 1.0,
    ) -> Callable[[], Any]:
        """Register ``fn`` (sync or async, no arguments, returns bool or ``CheckResult``).

        A non-critical check that fails makes the report "warn" (still 200).  Results
        are reused for ``success_ttl`` / ``failure_ttl`` seconds.  Raises ``ConfigError``
        for a duplicate name or a bad value.
        """
        _validate(name, fn, kind, timeout, success_ttl, failure_ttl)
        with self._lock:
            if name in self._checks:
                raise ConfigError("name", name, "a check name not registered yet")
            self._checks[name] = Check(
                name,
                fn,
                kind,
                timeout=timeout,
                critical=critical,
                success_ttl=success_ttl,
                failure_ttl=failure_ttl,
            )
        return fn

    def check(
        self, name: str | None = None, kind: CheckKind = "readiness", **options: Any
    ) -> Callable[[F], F]:
        """Decorator form of :meth:`add_check` (the name defaults to the function's)."""

        def register(fn: F) -> F:
            self.add_check(name or fn.__name__, fn, kind, **options)
            return fn

        return register

    def add_warmup(self, name: str, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Register a warm-up task (sync or async); startup fails until it has finished.

        Warm-ups start when :meth:`mark_started` is called (at once if already started):
        async ones on the running loop, sync ones in a thread.  A warm-up that raises
        keeps startup failing.
        """
        if not isinstance(name, str) or not name or not callable(fn):
            raise ConfigError("name", name, "a non-empty name and a callable")
        self._warmups.add(name, fn)
        if self._started:
            self._warmups.launch(_running_loop())
        return fn

    def mark_started(self) -> None:
        """The application finished its own start-up (ASGI lifespan startup calls this)."""
        loop = _running_loop()
        if loop is not None:
            self._loop = loop
            self._watch(loop)
        self._started = True
        self._warmups.launch(loop)
        lifecycle.reinstall_signal_handlers()  # a server may have replaced them after setup

    @property
    def started(self) -> bool:
        """Startup has passed (it stays passed)."""
        return self._startup_passed

    @property
    def draining(self) -> bool:
        """True once shutdown began: readiness answers 503 from then on."""
        return self._draining

    def start_draining(self) -> None:
        """Fail readiness from now on.  Safe inside a signal handler (sets one flag)."""
        self._draining = True

    def check_sync(self, kind: CheckKind) -> HealthReport:
        """Run the ``kind`` probe from a thread; never raises, bounded by check timeouts."""
        try:
            gate = self._gate(kind, lambda: self.check_sync("startup").ok)
            if gate is not None:
                return HealthReport(kind, "fail", reason=gate)
            results, runs = self._start_all(kind, self._loop, blocking=True)
            for name, (check, future, deadline) in runs.items():
                results[name] = wait(check, future, deadline)
            return self._report(kind, results)
        except Exception:  # a bug here must not take the probe down with a 500
            return _internal_failure(kind)

    async def check_async(self, kind: CheckKind) -> HealthReport:
        """Run the ``kind`` probe on the running loop without ever blocking it."""
        try:
            startup = await self.check_async("startup") if self._needs_startup(kind) else None
            gate = self._gate(kind, lambda: startup is None or startup.ok)
            if gate is not None:
                return HealthReport(kind, "fail", reason=gate)
            loop = asyncio.get_running_loop()
            results, runs = self._start_all(kind, loop, blocking=False)
            for name, (check, future, deadline) in runs.items():
                results[name] = await wait_async(check, future, deadline)
            return self._report(kind, results)
        except Exception:  # a bug here must not take the probe down with a 500
            return _internal_failure(kind)

    def _start_all(
        self, kind: CheckKind, loop: asyncio.AbstractEventLoop | None, *, blocking: bool
    ) -> tuple[dict[str, CheckResult], dict[str, tuple[Check, Any, float]]]:
        """Cached results, and the runs started (or joined) for the rest."""
        now, results, runs = time.monotonic(), {}, {}
        for check in self._of_kind(kind):
            cached = check.cached(now)
            if cached is not None:
                results[check.name] = cached
            else:
                runs[check.name] = (check, *check.start(loop, blocking=blocking))
        return results, runs

    def _needs_startup(self, kind: CheckKind) -> bool:
        return kind == "readiness" and not self._startup_passed and not self._draining

    def _gate(self, kind: CheckKind, startup_ok: Callable[[], bool]) -> str | None:
        """Why ``kind`` fails before any check runs, or ``None``."""
        if kind == "liveness" or (kind == "startup" and self._startup_passed):
            return None
        if kind == "readiness" and self._draining:
            return "draining"
        if kind == "startup":
            return None if self._started else "starting"
        return None if self._startup_passed or startup_ok() else "starting"

    def _of_kind(self, kind: CheckKind) -> list[Check]:
        if kind == "startup" and self._startup_passed:
            return []
        return [check for check in list(self._checks.values()) if check.kind == kind]

    def _report(self, kind: CheckKind, results: dict[str, CheckResult]) -> HealthReport:
        if kind == "startup" and not self._startup_passed:
            results = {**self._warmups.results(), **results}
        status = _overall(self._checks, results)
        if kind == "startup" and status != "fail":
            self._startup_passed = True
        if kind == "readiness" and self._draining:  # drain began while checks ran
            return HealthReport(kind, "fail", MappingProxyType(results), "draining")
        return HealthReport(kind, status, MappingProxyType(results))

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Add the liveness heartbeat for ``loop`` (once)."""
        if "event_loop" in self._checks:
            return
        beat = _Heartbeat(loop)
        self.add_check("event_loop", beat.check, "liveness", success_ttl=0.0, failure_ttl=0.0)
        self._checks["event_loop"].inline = True  # reads a timestamp: no thread needed


class _Heartbeat:
    """A callback the loop runs every ``LOOP_BEAT`` seconds; liveness fails when it stops
    running while the loop claims to be running (blocked or deadlocked)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop, self.last = loop, time.monotonic()
        loop.call_soon(self.beat)

    def beat(self) -> None:
        self.last = time.monotonic()
        self.loop.call_later(LOOP_BEAT, self.beat)

    def check(self) -> CheckResult:
        lag = time.monotonic() - self.last
        if self.loop.is_running() and lag > LOOP_MAX_LAG:
            return CheckResult("fail", "event loop unresponsive")
        return CheckResult("pass")


def _overall(checks: Mapping[str, Check], results: Mapping[str, CheckResult]) -> Status:
    status: Status = "pass"
    for name, result in results.items():
        check = checks.get(name)
        critical = check is None or check.critical  # warm-ups are always critical
        if not result.ok and critical:
            return "fail"
        if result.status != "pass":
            status = "warn"
    return status


_reported: set[str] = set()


def _internal_failure(kind: CheckKind) -> HealthReport:
    """A failing report for an internal error, logged once per kind."""
    if kind not in _reported:
        _reported.add(kind)
        logging.getLogger("unified_obs").warning(
            "unified_obs: %s probe failed", kind, exc_info=True
        )
    return HealthReport(kind, "fail", reason="error")


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _validate(
    name: str, fn: object, kind: str, timeout: float, success_ttl: float, failure_ttl: float
) -> None:
    if not isinstance(name, str) or not name:
        raise ConfigError("name", name, "a non-empty string")
    if not callable(fn):
        raise ConfigError("fn", fn, "a callable taking no arguments")
    if kind not in KINDS:
        raise ConfigError("kind", kind, "one of: " + ", ".join(KINDS))
    if not timeout > 0:
        raise ConfigError("timeout", timeout, "a number of seconds > 0")
    for label, ttl in (("success_ttl", success_ttl), ("failure_ttl", failure_ttl)):
        if not ttl >= 0:
            raise ConfigError(label, ttl, "a number of seconds >= 0")


_default: Final = HealthRegistry()


def default_registry() -> HealthRegistry:
    """The process-wide registry (``tel.health``)."""
    return _default


def reset() -> None:
    """Clear the process-wide registry in place: no checks, not started, not draining."""
    HealthRegistry.__init__(_default)
    _check_runner.forget_instruments()
