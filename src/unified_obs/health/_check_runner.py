"""Running one health check: timeout, coalescing, TTL cache, metrics and state-change logs.

Every run happens off the caller's stack: a sync check in its own daemon thread, an
async check on the application's event loop (when known) or in a private loop.  The
caller only waits, up to the check's timeout, on a ``concurrent.futures.Future``; a
check that hangs is reported as failing at its timeout, and while it still hangs no
second copy is started (so probes never pile up threads).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

__all__ = ["Check", "CheckKind", "CheckResult", "Status"]

CheckKind = Literal["liveness", "readiness", "startup"]
Status = Literal["pass", "warn", "fail"]
KINDS: Final[tuple[CheckKind, ...]] = ("liveness", "readiness", "startup")


@dataclass(frozen=True, slots=True)
class CheckResult:
    """A check's answer: ``status`` ("pass", "warn" or "fail") and an optional short detail.

    The detail is shown only when details are enabled; keep it free of secrets.
    """

    status: Status = "pass"
    detail: str | None = None

    @property
    def ok(self) -> bool:
        """True unless the status is "fail"."""
        return self.status != "fail"


PASS: Final = CheckResult("pass")
FAIL: Final = CheckResult("fail")
TIMEOUT: Final = CheckResult("fail", "timeout")
INVALID: Final = CheckResult("fail", "invalid result")
_STATUSES: Final = frozenset(("pass", "warn", "fail"))


def coerce(value: object) -> CheckResult:
    """What a check returned, as a ``CheckResult``; anything unknown fails closed.

    ``None`` and ``True`` pass, ``False`` fails, a ``CheckResult`` with a known status is
    taken as is.  Anything else (``"fail"``, a dict, ``0``, ``CheckResult("bogus")``) is
    :data:`INVALID`: a check whose answer cannot be read must never count as healthy.
    """
    if value is None or value is True:
        return PASS
    if value is False:
        return FAIL
    if isinstance(value, CheckResult) and _known(value.status):
        return value
    return INVALID


class Check:
    """One registered check with its cache and its (at most one) run in progress."""

    def __init__(
        self,
        name: str,
        fn: Callable[[], Any],
        kind: CheckKind,
        *,
        timeout: float,
        critical: bool,
        success_ttl: float,
        failure_ttl: float,
    ) -> None:
        self.name, self.fn, self.kind = name, fn, kind
        self.timeout, self.critical = timeout, critical
        self.success_ttl, self.failure_ttl = success_ttl, failure_ttl
        self.is_async = inspect.iscoroutinefunction(fn)
        self.inline = False  # the library's own cheap checks run on the caller's stack
        self.last: CheckResult | None = None
        self._last_at = 0.0
        self._run: concurrent.futures.Future[CheckResult] | None = None
        self._run_deadline = 0.0
        self._timeout_recorded = False
        self._warned_invalid = False
        self._lock = threading.Lock()

    def cached(self, now: float) -> CheckResult | None:
        """The last result while its TTL lasts, else ``None``."""
        last = self.last
        if last is None:
            return None
        ttl = self.success_ttl if last.ok else self.failure_ttl
        return last if now - self._last_at < ttl else None

    def start(
        self, loop: asyncio.AbstractEventLoop | None, *, blocking: bool
    ) -> tuple[concurrent.futures.Future[CheckResult], float]:
        """The run in progress (started now if none): its future and its deadline.

        An async check runs on ``loop`` when it is running and the caller will not
        block that loop's own thread waiting for it (``blocking``).
        """
        with self._lock:
            if self._run is None or self._run.done():
                self._run_deadline = time.monotonic() + self.timeout
                self._timeout_recorded = False
                self._run = self._launch(loop, blocking)
            return self._run, self._run_deadline

    def _launch(
        self, loop: asyncio.AbstractEventLoop | None, blocking: bool
    ) -> concurrent.futures.Future[CheckResult]:
        started = time.perf_counter()
        if self.inline:
            future: concurrent.futures.Future[CheckResult] = concurrent.futures.Future()
            try:
                future.set_result(self._call())
            except Exception as exc:  # reported as the check's failure
                future.set_exception(exc)
        elif self.is_async and loop is not None and _usable(loop, blocking):
            future = asyncio.run_coroutine_threadsafe(self._run_async(), loop)
        else:
            target = (lambda: asyncio.run(self._run_async())) if self.is_async else self._call
            future = _in_thread(target, f"unified_obs-check-{self.name}")
        future.add_done_callback(lambda f: self._finished(f, started))
        return future

    def _call(self) -> CheckResult:
        return self._read(self.fn())

    async def _run_async(self) -> CheckResult:
        return self._read(await asyncio.wait_for(self.fn(), self.timeout))

    def _read(self, value: object) -> CheckResult:
        """``value`` as a result; the first unreadable answer logs one warning naming us."""
        result = coerce(value)
        if result is INVALID and not self._warned_invalid:
            self._warned_invalid = True
            logging.getLogger("unified_obs").warning(
                "unified_obs: health check %r returned %s, not a bool, None or a CheckResult "
                "with status pass/warn/fail; counted as failing",
                self.name,
                _describe(value),
            )
        return result

    def _finished(self, future: concurrent.futures.Future[CheckResult], started: float) -> None:
        elapsed = time.perf_counter() - started
        if self._timeout_recorded and future is self._run:
            return  # already reported as a timeout; a late answer does not count
        error = None if future.cancelled() else future.exception()
        result = classify(future) if elapsed <= self.timeout else TIMEOUT
        self.record(result, elapsed, error)

    def timed_out(self, future: concurrent.futures.Future[CheckResult]) -> CheckResult:
        """Report ``future``'s run as timed out (recorded once per run) and return that."""
        with self._lock:
            first = future is self._run and not self._timeout_recorded and not future.done()
            if first:
                self._timeout_recorded = True
        if first:
            self.record(TIMEOUT, self.timeout, None)
        return TIMEOUT

    def record(self, result: CheckResult, elapsed: float, error: BaseException | None) -> None:
        """Store ``result`` (cache), update metrics and log a change of state once."""
        previous, self.last, self._last_at = self.last, result, time.monotonic()
        _observe(self, result, elapsed)
        if previous is None or previous.ok != result.ok:
            _log_change(self, result, previous, error)


def _known(status: object) -> bool:
    return isinstance(status, str) and status in _STATUSES


def _describe(value: object) -> str:
    """A value's type, and the status of a ``CheckResult`` (never the value: it may hold
    a secret)."""
    if isinstance(value, CheckResult):
        return f"CheckResult with status {str(value.status)[:20]!r}"
    return f"a value of type {type(value).__name__}"


def _usable(loop: asyncio.AbstractEventLoop, blocking: bool) -> bool:
    """``loop`` runs, and a blocking caller is not on it (never block a loop on itself)."""
    if loop.is_closed() or not loop.is_running():
        return False
    if not blocking:
        return True
    try:
        return asyncio.get_running_loop() is not loop
    except RuntimeError:
        return True


def _in_thread(target: Callable[[], CheckResult], name: str) -> concurrent.futures.Future[Any]:
    future: concurrent.futures.Future[CheckResult] = concurrent.futures.Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(target())
        except BaseException as exc:  # reported as the check's failure, never re-raised
            future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def classify(future: concurrent.futures.Future[CheckResult]) -> CheckResult:
    """A finished run as a result: its value, "timeout", or the exception's type name."""
    if future.cancelled():
        return TIMEOUT
    error = future.exception()
    if error is None:
        return future.result()
    if isinstance(error, (asyncio.TimeoutError, TimeoutError)):
        return TIMEOUT
    return CheckResult("fail", f"error: {type(error).__name__}")


def wait(
    check: Check, future: concurrent.futures.Future[CheckResult], deadline: float
) -> CheckResult:
    """The run's result, or ``TIMEOUT`` once ``deadline`` has passed (blocks this thread)."""
    try:
        future.exception(max(deadline - time.monotonic(), 0.0))
    except concurrent.futures.TimeoutError:
        return check.timed_out(future)
    except concurrent.futures.CancelledError:
        return TIMEOUT
    return classify(future)


async def wait_async(
    check: Check, future: concurrent.futures.Future[CheckResult], deadline: float
) -> CheckResult:
    """Like :func:`wait` without blocking the event loop (the run is never cancelled)."""
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()

    def wake(_: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(_resolve, finished)

    future.add_done_callback(wake)
    done, _ = await asyncio.wait({finished}, timeout=max(deadline - time.monotonic(), 0.0))
    return classify(future) if done else check.timed_out(future)


def _resolve(finished: asyncio.Future[None]) -> None:
    if not finished.done():
        finished.set_result(None)


_instruments: dict[str, Any] = {}


def forget_instruments() -> None:
    """Look the metric instruments up again on the next run (``testing.reset``)."""
    _instruments.clear()


def _observe(check: Check, result: CheckResult, elapsed: float) -> None:
    """Status gauge (1 pass/warn, 0 fail) and duration histogram; silent if metrics is absent."""
    try:
        status, duration = _metric_instruments()
        status.labels(check.name, check.kind).set(1.0 if result.ok else 0.0)
        duration.labels(check.name, check.kind).observe(elapsed)
    except Exception:  # metrics unavailable or mid-change: health must keep working
        _instruments.clear()


def _metric_instruments() -> tuple[Any, Any]:
    if not _instruments:
        from .. import metrics  # on first use: health alone does not load prometheus_client

        labels = ("check", "kind")
        _instruments["status"] = metrics.gauge(
            "unified_obs.health.check.status",
            "1 when the check passes, 0 when it fails",
            labels=labels,
        )
        _instruments["duration"] = metrics.histogram(
            "unified_obs.health.check.duration",
            "Time a health check took",
            labels=labels,
            unit="s",
        )
    return _instruments["status"], _instruments["duration"]


def _log_change(
    check: Check, result: CheckResult, previous: CheckResult | None, error: BaseException | None
) -> None:
    try:
        from ..logs import get_logger

        log = get_logger("unified_obs.health")
        fields = {"check": check.name, "kind": check.kind, "detail": result.detail}
        if not result.ok:
            log.warning("health.check.failed", exc_info=error, **fields)
        elif previous is not None:
            log.info("health.check.recovered", **fields)
    except Exception:  # logging must never break a probe
        pass
