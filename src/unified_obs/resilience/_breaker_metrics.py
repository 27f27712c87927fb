"""The metrics of one circuit breaker (names mirror resilience4j's Micrometer binder; the
breaker's name is the ``breaker`` label, not resilience4j's ``name``, which would clash
with the ``name`` of every metrics API call).

- ``unified_obs.circuit_breaker.state{breaker, state}``: 1 for the current state, 0 for the
  others (resilience4j's ``resilience4j_circuitbreaker_state``);
- ``unified_obs.circuit_breaker.transitions{breaker, from_state, to_state}``: every change
  of state, so a flap between two scrapes still shows (resilience4j has no such counter);
- ``unified_obs.circuit_breaker.call.duration{breaker, outcome}`` (seconds): permitted calls
  by ``outcome`` (``successful``, ``failed``, ``ignored``, ``cancelled``); its ``_count``
  is the calls by outcome and its buckets give the P99;
- ``unified_obs.circuit_breaker.slow_calls{breaker, outcome}``: calls slower than the
  policy's ``slow_call_duration``;
- ``unified_obs.circuit_breaker.not_permitted_calls{breaker}``: calls rejected while open.

Children are bound once and bound again when ``testing.reset()`` replaced the instruments.
Recording never raises.
"""

from __future__ import annotations

from typing import Any, Final

from .. import metrics
from ._state import STATES, State

__all__ = ["OUTCOMES", "BreakerMetrics"]

OUTCOMES: Final = ("successful", "failed", "ignored", "cancelled")
_DURATION: Final = "unified_obs.circuit_breaker.call.duration"
_DEFINED: Final[dict[str, Any]] = getattr(metrics, "_instruments", {})
"""The metrics module's own table (mutated in place, never replaced): one dict lookup
tells whether the bound children still belong to the live instruments."""
_UNBOUND: Final = object()


def _define() -> dict[str, Any]:
    labels = ("breaker",)
    return {
        "state": metrics.gauge(
            "unified_obs.circuit_breaker.state",
            "Circuit breaker state (1 for the current state, 0 for the others)",
            labels=("breaker", "state"),
        ),
        "transitions": metrics.counter(
            "unified_obs.circuit_breaker.transitions",
            "Circuit breaker state changes",
            labels=("breaker", "from_state", "to_state"),
        ),
        "duration": metrics.histogram(
            _DURATION,
            "Duration of calls a circuit breaker let through, by outcome",
            labels=("breaker", "outcome"),
            unit="s",
        ),
        "slow": metrics.counter(
            "unified_obs.circuit_breaker.slow_calls",
            "Calls slower than the circuit breaker's slow_call_duration",
            labels=("breaker", "outcome"),
        ),
        "rejected": metrics.counter(
            "unified_obs.circuit_breaker.not_permitted_calls",
            "Calls a circuit breaker rejected",
            labels=labels,
        ),
    }


class BreakerMetrics:
    """The bound series of one breaker."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._duration: Any = _UNBOUND  # the live histogram the children below belong to
        self._instruments: dict[str, Any] = {}
        self._calls: dict[str, Any] = {}
        self._state: State = "closed"

    def call(self, outcome: str, seconds: float, slow: bool) -> None:
        """One permitted call finished with ``outcome`` after ``seconds``."""
        try:
            if _DEFINED.get(_DURATION) is not self._duration:
                self._bind()
            self._calls[outcome].observe(seconds)
            if slow:
                self._instruments["slow"].labels(self._name, outcome).inc()
        except Exception:
            pass

    def succeeded(self, seconds: float) -> None:
        """One permitted call succeeded after ``seconds`` and was not slow (the hot path)."""
        try:
            if _DEFINED.get(_DURATION) is not self._duration:
                self._bind()
            self._calls["successful"].observe(seconds)
        except Exception:
            pass

    def publish_state(self) -> None:
        """Show the current state's series (at start, before any call)."""
        self._safely(self._set_state)

    def rejected(self) -> None:
        """One call was not permitted."""
        self._safely(lambda: self._instruments["rejected"].labels(self._name).inc())

    def transition(self, from_state: State, to_state: State) -> None:
        """The breaker moved from ``from_state`` to ``to_state``."""
        self._state = to_state
        self._safely(
            lambda: self._instruments["transitions"].labels(self._name, from_state, to_state).inc()
        )
        self._safely(self._set_state)

    def _safely(self, record: Any) -> None:
        try:
            if _DEFINED.get(_DURATION) is not self._duration:
                self._bind()
            record()
        except Exception:
            pass

    def _bind(self) -> None:
        self._instruments = _define()
        self._calls = {
            outcome: self._instruments["duration"].labels(self._name, outcome)
            for outcome in OUTCOMES
        }
        self._duration = self._instruments["duration"]
        self._set_state()

    def _set_state(self) -> None:
        gauge = self._instruments["state"]
        for state in STATES:
            gauge.labels(self._name, state).set(1.0 if state == self._state else 0.0)
