"""``BreakerPolicy``: when a circuit breaker opens, how long it stays open, how it probes.

The knobs and their meaning are resilience4j's (``CircuitBreakerConfig``), with rates as
fractions and durations in seconds.  Validation happens when the policy is built, so a
bad value raises ``ConfigError`` at start-up, never on a call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError
from ._window import CountWindow, TimeWindow, Window

__all__ = ["BreakerPolicy"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerPolicy:
    """When to open (failure rate **or** slow-call rate over a sliding window, once it
    holds ``minimum_calls``), how long to stay open (``wait_in_open``, multiplied by
    ``backoff_multiplier`` for each further open in a row, up to ``max_wait_in_open``),
    and how to probe (``permitted_calls_in_half_open`` trial calls, decided on together;
    back to open if they have not all reported after ``max_wait_in_half_open`` seconds,
    0 = wait for them)."""

    failure_rate_threshold: float = 0.5
    slow_call_rate_threshold: float = 1.0
    slow_call_duration: float = 60.0
    window: Literal["count", "time"] = "count"
    window_size: int = 100
    minimum_calls: int = 100
    wait_in_open: float = 60.0
    backoff_multiplier: float = 1.0
    max_wait_in_open: float | None = None
    permitted_calls_in_half_open: int = 10
    max_wait_in_half_open: float = 0.0

    def __post_init__(self) -> None:
        for name in ("failure_rate_threshold", "slow_call_rate_threshold"):
            value = getattr(self, name)
            _require(name, value, _seconds(value, 0) and value <= 1, "a fraction in (0, 1]")
        _require("window", self.window, self.window in ("count", "time"), "'count' or 'time'")
        for name in ("window_size", "minimum_calls", "permitted_calls_in_half_open"):
            value = getattr(self, name)
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
            _require(name, value, ok, "a whole number >= 1")
        for name in ("slow_call_duration", "wait_in_open"):
            _require(name, getattr(self, name), _seconds(getattr(self, name), 0), "seconds > 0")
        _require(
            "max_wait_in_half_open",
            self.max_wait_in_half_open,
            _seconds(self.max_wait_in_half_open, 0, inclusive=True),
            "seconds >= 0 (0: wait for every trial call)",
        )
        self._check_backoff()

    def _check_backoff(self) -> None:
        multiplier = self.backoff_multiplier
        ok = _seconds(multiplier, 1, inclusive=True)
        _require("backoff_multiplier", multiplier, ok, "a number >= 1")
        cap = self.max_wait_in_open
        if cap is not None:
            ok = _seconds(cap, 0) and cap >= self.wait_in_open
            _require("max_wait_in_open", cap, ok, "seconds >= wait_in_open, or None")

    def new_window(self) -> Window:
        """An empty window of the configured kind and size."""
        if self.window == "time":
            return TimeWindow(self.window_size)
        return CountWindow(self.window_size)

    def open_duration(self, opens_in_a_row: int) -> float:
        """Seconds to stay open after the ``opens_in_a_row``-th open since the last close."""
        try:
            growth = self.backoff_multiplier ** max(0, opens_in_a_row - 1)
        except OverflowError:
            growth = math.inf
        wait = self.wait_in_open * growth
        cap = self.max_wait_in_open
        return wait if cap is None else min(wait, cap)


def _seconds(value: object, low: float, *, inclusive: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    return value >= low if inclusive else value > low


def _require(name: str, value: object, ok: bool, accepted: str) -> None:
    if not ok:
        raise ConfigError(name, value, accepted)
