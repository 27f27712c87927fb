"""RED metrics of decorated functions: a calls counter and a duration histogram.

``function.calls`` (Prometheus ``function_calls_total``) counts calls by ``function``,
``module``, ``outcome`` (``ok``, ``error``, ``client_error`` for an HTTP exception with a
4xx status, ``cancelled``) and ``error_type``;
``function.duration`` (seconds, ``function_duration_seconds``) times them by
``function``, ``module`` and ``outcome``, with an exemplar of the current span when
it is sampled.  Label values come from the code, never from arguments, so the series
count is bounded by the number of decorated functions and exception classes.

``counted("jobs.processed")`` (a name given) counts in a counter of its own instead:
``jobs.processed`` (Prometheus ``jobs_processed_total``) by ``outcome`` and
``error_type``; the name is the metric, so no ``function`` or ``module`` label.

Bound children are resolved on first use and kept; they are bound again when the
instruments were replaced (``testing.reset()`` forgets every instrument).
"""

from __future__ import annotations

from typing import Any, Final

from .. import metrics

__all__ = ["CALLS", "DURATION", "CallMetrics", "own_counter"]

CALLS: Final = "function.calls"
DURATION: Final = "function.duration"
_CALL_LABELS: Final = ("function", "module", "outcome", "error_type")
_DURATION_LABELS: Final = ("function", "module", "outcome")
_OWN_LABELS: Final = ("outcome", "error_type")


_DEFINED: Final[dict[str, Any]] = getattr(metrics, "_instruments", {})
"""The metrics module's own table (mutated in place, never replaced): one dict lookup
tells whether a cached child still belongs to the live instrument."""


def _instruments() -> tuple[Any, Any]:
    calls = metrics.counter(
        CALLS, "Calls of functions instrumented by unified_obs", labels=_CALL_LABELS
    )
    duration = metrics.histogram(
        DURATION,
        "Duration of functions instrumented by unified_obs",
        labels=_DURATION_LABELS,
        unit="s",
    )
    return calls, duration


def own_counter(name: str) -> Any:
    """The counter of ``counted(name)`` (get-or-create); ``ConfigError`` for a name that is
    not an instrument name or is already defined otherwise."""
    return metrics.counter(name, "Calls counted by unified_obs.counted", labels=_OWN_LABELS)


class _Skipped:
    """Stands in for the instrument a ``timed`` or ``counted`` site does not record."""

    __slots__ = ()

    def inc(self, amount: float = 1.0) -> None:
        """Nothing."""

    def observe(self, value: float) -> None:
        """Nothing."""


_SKIPPED: Final = _Skipped()


class CallMetrics:
    """The bound series of one function (``function`` and ``module`` fixed)."""

    __slots__ = (
        "_count",
        "_counter",
        "_failed",
        "_instrument",
        "_key",
        "_module",
        "_name",
        "_ok_calls",
        "_ok_duration",
        "_own",
        "_time",
    )

    def __init__(
        self,
        name: str,
        module: str,
        *,
        count: bool = True,
        time: bool = True,
        counter: Any = None,
    ) -> None:
        """``counter``: the counter named ``name`` (:func:`own_counter`, already fetched by
        the caller) to count in (see the module's docstring), timing nothing."""
        self._name = name
        self._module = module
        self._own = counter is not None
        self._count = count or self._own
        self._time = time and not self._own
        self._key = name if self._own else CALLS if count else DURATION
        self._counter: Any = counter  # the own counter last fetched: reused while still live
        self._instrument: Any = _SKIPPED  # the live instrument the children below belong to
        self._ok_calls: Any = _SKIPPED
        self._ok_duration: Any = _SKIPPED
        self._failed: dict[tuple[str, str], tuple[Any, Any]] = {}

    def ok(self, elapsed: float) -> None:
        """Count one successful call that took ``elapsed`` seconds (never raises)."""
        if _DEFINED.get(self._key) is not self._instrument:
            self._rebind()
        self._ok_calls.inc()
        self._ok_duration.observe(elapsed)

    def failed(self, elapsed: float, outcome: str, error_type: str) -> None:
        """Count one call that ended with ``outcome`` (``error`` or ``cancelled``)."""
        if _DEFINED.get(self._key) is not self._instrument:
            self._rebind()
        key = (outcome, error_type)
        children = self._failed.get(key)
        if children is None:
            try:
                children = self._bind(*self._fetch(), outcome, error_type)
            except Exception:
                children = (_SKIPPED, _SKIPPED)
            self._failed[key] = children
        children[0].inc()
        children[1].observe(elapsed)

    def _rebind(self) -> None:
        try:
            calls, duration = self._fetch()
            self._ok_calls, self._ok_duration = self._bind(calls, duration, "ok", "")
        except Exception:  # e.g. a conflicting user definition: record nothing, never raise
            self._ok_calls = self._ok_duration = _SKIPPED
            self._failed.clear()
            # no retry while that definition stands; retried once the table changes
            self._instrument = _DEFINED.get(self._key, _SKIPPED)
            return
        self._failed.clear()
        self._instrument = calls if self._count else duration

    def _fetch(self) -> tuple[Any, Any]:
        """The live instruments: the calls counter (or own counter) and the histogram.

        The own counter is looked up again (get-or-create, which checks the name and
        labels each time) only once the metrics table no longer holds the one kept: a
        ``with counted("jobs.processed"):`` block looks it up once, not three times
        (22 -> 10 us a block)."""
        if not self._own:
            return _instruments()
        counter = self._counter
        if _DEFINED.get(self._key) is not counter:
            counter = self._counter = own_counter(self._name)
        return counter, counter

    def _bind(self, calls: Any, duration: Any, outcome: str, error_type: str) -> tuple[Any, Any]:
        if self._own:
            return calls.labels(outcome, error_type), _SKIPPED
        return (
            calls.labels(self._name, self._module, outcome, error_type)
            if self._count
            else _SKIPPED,
            duration.labels(self._name, self._module, outcome) if self._time else _SKIPPED,
        )
