"""Fault injection, the pure part: rules, and which request gets which fault.

Envoy's HTTP fault filter is the model: a fault is a delay, an abort with a status, or
(for code, not HTTP) a raised exception, applied to a percentage of the requests that
match a route, a target and headers.  Three guards come first:

- **Off unless armed.** :func:`choose` returns nothing unless the plan is armed, which only
  ``setup(faults_enabled=True)`` or ``UNIFIED_OBS_FAULTS_ENABLED=true`` does; no request
  can arm it.
- **Headers never exceed the configuration.** With ``header_control`` on, a rule fires only
  for requests that ask for it (``x-unified-obs-fault-delay: <ms>``,
  ``x-unified-obs-fault-abort: <status>``, each with an optional ``...-percentage``); the
  header chooses a value and a percentage, capped by the rule's percentage and by
  ``max_delay``; a header never names anything to run (exceptions are configured in code).
- **Victims by trace id.** A request is faulted when a hash of its trace id (and the rule's
  position) falls under the percentage, so the retries of one trace meet the same fault
  and the observed rate is the configured one (Istio's per-attempt coin toss makes a 50 %
  abort look like 12 % behind two retries).

Bounding how many faults run at once is the injector's job (:mod:`.faults`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from ..errors import ConfigError, UnifiedObsError

__all__ = [
    "HEADER_ABORT",
    "HEADER_ABORT_PERCENTAGE",
    "HEADER_DELAY",
    "HEADER_DELAY_PERCENTAGE",
    "Fault",
    "FaultPlan",
    "FaultRule",
    "InjectedFault",
    "choose",
]

HEADER_DELAY: Final = "x-unified-obs-fault-delay"
HEADER_DELAY_PERCENTAGE: Final = "x-unified-obs-fault-delay-percentage"
HEADER_ABORT: Final = "x-unified-obs-fault-abort"
HEADER_ABORT_PERCENTAGE: Final = "x-unified-obs-fault-abort-percentage"
Kind = Literal["delay", "abort", "error"]
_MASK64: Final = (1 << 64) - 1


class InjectedFault(UnifiedObsError):
    """Raised in place of the protected code by an ``abort`` or ``error`` fault."""

    def __init__(self, status: int | None = None) -> None:
        super().__init__(f"fault injected by unified_obs (status {status})")
        self.status = status


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultRule:
    """One fault: ``kind`` (``delay`` by ``delay`` seconds, ``abort`` with HTTP ``status``
    or gRPC ``grpc_code``, ``error`` raising ``exception``) for ``percentage`` (0-100) of
    the requests whose route is in ``routes`` (an HTTP path or a gRPC ``pkg.Service/Method``;
    a trailing ``*`` matches a prefix) and whose target (a fault point's name) is in
    ``targets`` (empty: any), and that carry every header in ``headers``."""

    kind: Kind
    percentage: float
    delay: float = 0.0
    status: int = 503
    grpc_code: int = 14  # UNAVAILABLE
    exception: type[Exception] = InjectedFault
    routes: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self.kind in ("delay", "abort", "error"), "kind", self.kind, "delay|abort|error")
        _check(_number(self.percentage, 0, 100), "percentage", self.percentage, "0 to 100")
        _check(_number(self.delay, 0, math.inf), "delay", self.delay, "seconds >= 0")
        _check(_whole(self.status, 200, 599), "status", self.status, "an HTTP status 200-599")
        _check(_whole(self.grpc_code, 1, 16), "grpc_code", self.grpc_code, "a gRPC code 1-16")
        ok = isinstance(self.exception, type) and issubclass(self.exception, Exception)
        _check(ok, "exception", self.exception, "an Exception subclass")

    def matches(
        self,
        route: str | None,
        target: str | None,
        headers: Mapping[str, str],
        *,
        named: bool = False,
    ) -> bool:
        """Whether a request to ``route`` / ``target`` with ``headers`` is in scope;
        ``named``: only if ``targets`` names ``target`` (a decorated function is faulted
        by the rules that name it, never by a catch-all rule meant for requests)."""
        if named and target not in self.targets:
            return False
        if self.routes and not _route_in(route, self.routes):
            return False
        if self.targets and target not in self.targets:
            return False
        return all(headers.get(name.lower()) == value for name, value in self.headers.items())


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultPlan:
    """The rules, the caps, and whether the process is armed at all."""

    rules: tuple[FaultRule, ...] = ()
    armed: bool = False
    header_control: bool = False
    max_delay: float = 5.0
    max_active: int = 10
    experiment_id: str | None = None
    named_targets: frozenset[str] = field(init=False, repr=False, compare=False)
    """Every name a rule's ``targets`` lists (the decorators' first question)."""

    def __post_init__(self) -> None:
        _check(_number(self.max_delay, 0, 3600), "max_delay", self.max_delay, "0 to 3600 s")
        ok = _whole(self.max_active, 1, 1_000_000)
        _check(ok, "max_active", self.max_active, "a whole number >= 1")
        named = frozenset(name for rule in self.rules for name in rule.targets)
        object.__setattr__(self, "named_targets", named)


@dataclass(frozen=True, slots=True)
class Fault:
    """What to do to one request: wait ``delay`` seconds, then (unless ``abort`` is
    None) fail with ``status`` / ``grpc_code`` / ``exception``."""

    delay: float
    abort: Kind | None
    status: int
    grpc_code: int
    exception: type[Exception]
    experiment_id: str | None

    @property
    def kind(self) -> str:
        """``delay``, ``abort``, ``error`` or ``delay+abort`` / ``delay+error``."""
        parts = (["delay"] if self.delay > 0 else []) + ([self.abort] if self.abort else [])
        return "+".join(parts) or "none"


def choose(
    plan: FaultPlan,
    *,
    route: str | None = None,
    target: str | None = None,
    trace_id: int | None = None,
    headers: Mapping[str, str] | None = None,
    named: bool = False,
) -> Fault | None:
    """The fault for one request, or ``None``.  ``headers``' names are lower case;
    ``named`` as for :meth:`FaultRule.matches`."""
    if not plan.armed or not plan.rules:
        return None
    asked = headers or {}
    delay, abort = 0.0, None
    for position, rule in enumerate(plan.rules):
        if not rule.matches(route, target, asked, named=named):
            continue
        chosen = _request(plan, rule, asked)
        if chosen is None or not _victim(trace_id, position, chosen[0]):
            continue
        if rule.kind == "delay" and delay == 0.0:
            delay = min(chosen[1], plan.max_delay)
        elif rule.kind != "delay" and abort is None:
            abort = (rule, int(chosen[1]))
    if abort is not None:
        failing, status = abort
        return Fault(
            delay,
            failing.kind,
            status,
            failing.grpc_code,
            failing.exception,
            plan.experiment_id,
        )
    if delay > 0.0:
        return Fault(delay, None, 0, 0, InjectedFault, plan.experiment_id)
    return None


def _request(
    plan: FaultPlan, rule: FaultRule, headers: Mapping[str, str]
) -> tuple[float, float] | None:
    """``(percentage, value)`` for ``rule`` (value: delay seconds or status), from the
    configuration, or with header control from the request capped by it."""
    value = rule.delay if rule.kind == "delay" else float(rule.status)
    if not plan.header_control:
        return rule.percentage, value
    name, percentage_name = (
        (HEADER_DELAY, HEADER_DELAY_PERCENTAGE)
        if rule.kind == "delay"
        else (HEADER_ABORT, HEADER_ABORT_PERCENTAGE)
    )
    asked = _header_number(headers, name)
    if asked is None:
        return None  # header control: a rule fires only when a request asks
    if rule.kind == "delay":
        value = asked / 1000.0  # milliseconds, as Envoy's header
    elif _whole(asked, 200, 599):
        value = asked
    else:
        return None
    percentage = _header_number(headers, percentage_name)
    capped = rule.percentage if percentage is None else min(max(percentage, 0.0), rule.percentage)
    return capped, value


def _route_in(route: str | None, patterns: tuple[str, ...]) -> bool:
    """``route`` is one of ``patterns``, or starts with one that ends in ``*``."""
    if route is None:
        return False
    return any(route.startswith(p[:-1]) if p.endswith("*") else route == p for p in patterns)


def _victim(trace_id: int | None, position: int, percentage: float) -> bool:
    """Whether this trace is in ``percentage`` % for the rule at ``position``."""
    if percentage >= 100.0:
        return True
    if percentage <= 0.0:
        return False
    if trace_id is None:  # no trace to follow: a fresh draw
        return random.random() * 100.0 < percentage
    return _mix(trace_id & _MASK64 ^ position) / 2.0**64 * 100.0 < percentage


def _mix(value: int) -> int:
    """splitmix64's finaliser: every input bit moves every output bit."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def _header_number(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    if raw is None or len(raw) > 16:
        return None
    try:
        number = float(raw)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _number(value: object, low: float, high: float) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return low <= value <= high


def _whole(value: object, low: int, high: int) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and value == int(value) and low <= value <= high


def _check(ok: bool, name: str, value: object, accepted: str) -> None:
    if not ok:
        raise ConfigError(name, value, accepted)
