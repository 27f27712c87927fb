"""``CircuitBreaker``: a decorator and context manager (sync and async) over the state machine.

The protected call never runs under a lock (pybreaker holds its lock across the call, so
concurrent callers queue); asking for a permit and reporting the outcome are short
critical sections in :class:`~._state.BreakerState`.  In the closed state asking is a
lock-free read, and a fast success into a window without failures (a healthy
dependency) is one lock-free tick of the state's success lane.  Time is the injected
monotonic ``clock`` (``time.monotonic`` by default; pybreaker, aiobreaker and
purgatory use wall-clock time, which NTP steps move).

Outcomes: an exception that is an instance of ``ignore`` is neither success nor failure;
any other ``Exception`` is a failure; a ``BaseException`` that is not an ``Exception``
(``asyncio.CancelledError``, ``KeyboardInterrupt``) hands its permit back uncounted.  A
return value for which ``failed_result`` is true counts as a failure (an HTTP 503
response).  A call slower than ``slow_call_duration`` is also slow.

Every transition is counted (:mod:`._breaker_metrics`), logged as one
``circuit_breaker.state_change`` line and added as a span event to the current span.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Final, ParamSpec, TypeVar, cast

from opentelemetry import trace

from ..errors import UnifiedObsError
from ..logs import get_logger
from ._breaker_metrics import BreakerMetrics
from ._policy import BreakerPolicy
from ._state import CLOSED, BreakerState, State, Transition

__all__ = ["CircuitBreaker", "CircuitOpenError"]

P = ParamSpec("P")
R = TypeVar("R")
_log: Final = get_logger("unified_obs.resilience")
_Permit = tuple[int, float, Any]  # (phase, start time, the enclosing permit)


class CircuitOpenError(UnifiedObsError):
    """The breaker did not let the call through (open, or half-open with every trial
    permit taken); ``retry_after`` is the seconds until trial calls are let through."""

    def __init__(self, name: str, state: State, retry_after: float) -> None:
        super().__init__(f"circuit breaker {name!r} is {state}; retry after {retry_after:.3g}s")
        self.name = name
        self.state = state
        self.retry_after = retry_after


class CircuitBreaker:
    """One breaker around one dependency; see :func:`unified_obs.resilience.breaker`."""

    def __init__(
        self,
        name: str,
        policy: BreakerPolicy | None = None,
        *,
        ignore: tuple[type[BaseException], ...] = (),
        failed_result: Callable[[Any], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.policy = policy or BreakerPolicy()
        self._slow_call_duration = self.policy.slow_call_duration
        self._ignore = ignore
        self._failed_result = failed_result
        self._clock = clock
        self._core = BreakerState(self.policy, clock())
        self._metrics = BreakerMetrics(name)
        self._metrics.publish_state()
        self._open_calls: ContextVar[_Permit | None] = ContextVar(f"breaker:{name}", default=None)

    @property
    def state(self) -> State:
        """The state now (an open breaker whose wait is over reads half-open)."""
        state, transition = self._core.current(self._clock())
        self._report(transition)
        return state

    @property
    def retry_after(self) -> float:
        """Seconds until an open breaker lets trial calls through (0 when not open)."""
        return self._core.retry_after(self._clock())

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Protect ``fn`` (a plain or ``async`` function; methods too)."""
        if inspect.iscoroutinefunction(fn):
            return cast(Callable[P, R], self._wrap_async(fn))
        return self._wrap_sync(fn)

    def _wrap_sync(self, fn: Callable[P, R]) -> Callable[P, R]:
        core, clock, returned = self._core, self._clock, self._returned()

        @functools.wraps(fn)
        def protected(*args: P.args, **kwargs: P.kwargs) -> R:
            start = clock()
            state, phase = core.phase  # _permit, inline: no call, no lock while closed
            if state != CLOSED:
                phase, start = self._permit_slow(start)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                self._finish_error(phase, start, exc)
                raise
            returned(phase, start, result)
            return result

        return protected

    def _wrap_async(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        core, clock, returned = self._core, self._clock, self._returned()

        @functools.wraps(fn)
        async def protected(*args: P.args, **kwargs: P.kwargs) -> R:
            start = clock()
            state, phase = core.phase  # as in the sync wrapper: the fast checks inline
            if state != CLOSED:
                phase, start = self._permit_slow(start)
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                self._finish_error(phase, start, exc)
                raise
            returned(phase, start, result)
            return result

        return protected

    def _returned(self) -> Callable[[int, float, Any], None]:
        """What a wrapper does with a call that returned: judged by ``failed_result`` when
        there is one; else a fast success into a closed window with no failed or slow call
        ticks the success lane (see ``_state``) with no lock, and anything else is counted."""
        core, clock, slow_after = self._core, self._clock, self._slow_call_duration
        succeeded, count, finish = self._metrics.succeeded, self._count, self._finish_result
        if self._failed_result is not None:
            return lambda phase, start, result: finish(phase, start, result, clock())

        def returned(phase: int, start: float, result: Any) -> None:
            now = clock()
            elapsed = now - start
            lane = core.lane
            if (
                lane is not None
                and lane[0] == phase
                and 0.0 <= elapsed < slow_after
                and lane[2] <= now < lane[3]
            ):
                succeeded(elapsed)
                next(lane[1])
                if core.lane is not lane:  # closed while we ticked: fold it ourselves
                    self._report(core.fold_late(phase, now))
            else:
                count(phase, start, False, now)

        return returned

    def __enter__(self) -> CircuitBreaker:
        phase, start = self._permit()
        self._open_calls.set((phase, start, self._open_calls.get()))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        permit = self._open_calls.get()
        if permit is None:  # pragma: no cover - an __exit__ without its __enter__
            return
        phase, start, enclosing = permit
        self._open_calls.set(enclosing)
        if exc is None:
            self._finish_result(phase, start, None)
        else:
            self._finish_error(phase, start, exc)

    async def __aenter__(self) -> CircuitBreaker:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)

    def _permit(self) -> tuple[int, float]:
        now = self._clock()
        state, phase = self._core.phase
        if state == CLOSED:  # no lock, no transition to report: the common case
            return phase, now
        return self._permit_slow(now)

    def _permit_slow(self, now: float) -> tuple[int, float]:
        phase, transition = self._core.acquire(now)
        if transition is not None:
            self._report(transition)
        if phase is None:
            self._reject(now)
        return cast(int, phase), now

    def _reject(self, now: float) -> None:
        state = self._core.phase[0]
        retry_after = self._core.retry_after(now)
        self._metrics.rejected()
        _span_event("circuit_breaker.rejected", self.name, state=state)
        raise CircuitOpenError(self.name, state, retry_after)

    def _finish_result(
        self, phase: int, start: float, result: Any, now: float | None = None
    ) -> None:
        """A call that returned: judged by ``failed_result``, else a success."""
        failed = False
        if self._failed_result is not None:
            try:
                failed = bool(self._failed_result(result))
            except Exception:  # a predicate that breaks counts the call as failed
                failed = True
        self._count(phase, start, failed, now)

    def _finish_error(self, phase: int, start: float, exc: BaseException) -> None:
        if isinstance(exc, self._ignore):
            self._uncounted(phase, start, "ignored")
        elif isinstance(exc, Exception):
            self._count(phase, start, True)
        else:
            self._uncounted(phase, start, "cancelled")

    def _count(self, phase: int, start: float, failed: bool, now: float | None = None) -> None:
        """A call that succeeded or failed (ended at ``now``, read when not given): into
        the metrics and the state machine."""
        if now is None:
            now = self._clock()
        elapsed = now - start if now > start else 0.0
        slow = elapsed >= self._slow_call_duration
        self._metrics.call("failed" if failed else "successful", elapsed, slow)
        transition = self._core.record(phase, failed, slow, now)
        if transition is not None:
            self._report(transition)

    def _uncounted(self, phase: int, start: float, outcome: str) -> None:
        """A call ignored or cancelled: into the metrics; its permit goes back."""
        elapsed = max(0.0, self._clock() - start)
        self._metrics.call(outcome, elapsed, elapsed >= self._slow_call_duration)
        self._core.release(phase)

    def _report(self, transition: Transition | None) -> None:
        if transition is None:
            return
        self._metrics.transition(transition.from_state, transition.to_state)
        rates = transition.rates
        _span_event(
            "circuit_breaker.state_change",
            self.name,
            from_state=transition.from_state,
            to_state=transition.to_state,
        )
        _log.warning(
            "circuit_breaker.state_change",
            circuit_breaker=self.name,
            from_state=transition.from_state,
            to_state=transition.to_state,
            calls=rates.calls,
            failure_rate=round(rates.failure_rate, 4),
            slow_call_rate=round(rates.slow_call_rate, 4),
            retry_after=round(transition.retry_after, 3),
        )


def _span_event(event: str, name: str, **attributes: str) -> None:
    try:
        fields = {"circuit_breaker.name": name}
        fields.update({f"circuit_breaker.{key}": value for key, value in attributes.items()})
        trace.get_current_span().add_event(event, fields)
    except Exception:
        pass
