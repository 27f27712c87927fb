"""Protecting dependencies: a circuit breaker with metrics.

    from unified_obs.resilience import breaker

    @breaker("payments", failure_rate_threshold=0.5, slow_call_duration=0.4)
    async def charge(card): ...

    with breaker("payments"):          # the same breaker: one per name and process
        ...

:func:`breaker` returns the process's breaker of that name, made on first use.  Its
state is per process: N workers hold N independent breakers (each opens on what its own
calls see).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Final

from ..errors import ConfigError
from ..health import default_registry
from ._breaker import CircuitBreaker, CircuitOpenError
from ._policy import BreakerPolicy
from ._state import CLOSED, HALF_OPEN, OPEN, State

__all__ = [
    "CLOSED",
    "HALF_OPEN",
    "OPEN",
    "BreakerPolicy",
    "CircuitBreaker",
    "CircuitOpenError",
    "State",
    "breaker",
    "reset",
]

_lock: Final = threading.Lock()
_breakers: dict[str, tuple[CircuitBreaker, tuple[Any, ...]]] = {}
_DEFAULTS: Final = (BreakerPolicy(), (), None, False, time.monotonic)


def breaker(
    name: str,
    *,
    ignore: tuple[type[BaseException], ...] = (),
    failed_result: Callable[[Any], bool] | None = None,
    readiness: bool = False,
    clock: Callable[[], float] = time.monotonic,
    **policy: Any,
) -> CircuitBreaker:
    """The circuit breaker called ``name`` (get-or-create).  ``policy`` takes the
    :class:`BreakerPolicy` fields; ``readiness=True`` adds a readiness check that fails
    while the breaker is open.  Asking again with different options raises
    ``ConfigError`` (asking with none returns it as it is), as does any invalid option."""
    if not isinstance(name, str) or not name:
        raise ConfigError("name", name, "a non-empty string")
    rules = BreakerPolicy(**policy)
    options = (rules, ignore, failed_result, readiness, clock)
    with _lock:
        found = _breakers.get(name)
        if found is not None:
            if options != _DEFAULTS and found[1] != options:
                raise ConfigError("name", name, f"the options it was first made with: {found[1]}")
            return found[0]
        made = CircuitBreaker(name, rules, ignore=ignore, failed_result=failed_result, clock=clock)
        if readiness:
            default_registry().add_check(
                f"circuit_breaker:{name}",
                lambda: made.state != OPEN,
                kind="readiness",
                success_ttl=0.0,  # reading the state is cheaper than a cache
                failure_ttl=0.0,
            )
        _breakers[name] = (made, options)
        return made


def reset() -> None:
    """Forget every breaker (tests; ``testing.reset()``)."""
    with _lock:
        _breakers.clear()
