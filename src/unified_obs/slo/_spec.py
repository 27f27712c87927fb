"""What an SLO is: an objective over the HTTP or gRPC metrics this library emits.

An :class:`Objective` is pure data (its numbers are :class:`~decimal.Decimal`, so ``99.9``
stays ``0.999`` and never becomes ``0.9990000000000001`` in a generated rule); a
:class:`Spec` groups a service's objectives with the SLO period.  Every check happens when
the object is built and raises :class:`~unified_obs.errors.ConfigError`, naming the field.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

from ..errors import ConfigError

__all__ = [
    "HTTP_BUCKETS",
    "AlertExtras",
    "Objective",
    "Spec",
    "as_decimal",
    "as_mapping",
    "availability",
    "latency",
    "pairs",
]

Kind = Literal["availability", "latency"]
Protocol = Literal["http", "grpc"]
Pairs = tuple[tuple[str, str], ...]

HTTP_BUCKETS: Final = tuple(
    Decimal(text)
    for text in [
        "0.005",
        "0.01",
        "0.025",
        "0.05",
        "0.075",
        "0.1",
        "0.25",
        "0.5",
        "0.75",
        "1",
        "2.5",
        "5",
        "7.5",
        "10",
    ]
)
"""The bucket boundaries (seconds) of ``http.server.request.duration`` and
``rpc.server.call.duration``: the semantic-convention ones the library always uses."""

_NAME: Final = re.compile(r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")
_LABEL: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def pairs(field: str, mapping: Mapping[str, object] | None) -> Pairs:
    """Label names (or annotation keys) mapped to text, sorted; the ``sloth_*`` labels the
    rules set themselves are refused."""
    if mapping is None:
        return ()
    if not isinstance(mapping, Mapping):
        raise ConfigError(field, mapping, "a mapping of label names to values")
    for name in mapping:
        if not isinstance(name, str) or not _LABEL.match(name) or name.startswith("sloth_"):
            raise ConfigError(field, name, "label names (letters, digits, _), none sloth_*")
    return tuple(sorted((name, str(value)) for name, value in mapping.items()))


@dataclass(frozen=True)
class AlertExtras:
    """Labels and annotations added to one alert (they win over the generated ones, so a
    ``severity`` given here is the one the alert carries)."""

    labels: Pairs = ()
    annotations: Pairs = ()


def as_mapping(field: str, value: object) -> Mapping[str, Any]:
    """``value`` when it is a mapping (a spec file's section), else ``ConfigError``."""
    if not isinstance(value, Mapping):
        raise ConfigError(field, value, "a mapping")
    return value


def as_decimal(field: str, value: object) -> Decimal:
    """``value`` (a number or its text) as an exact decimal: ``99.9`` -> ``Decimal('99.9')``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ConfigError(field, value, "a number, e.g. 99.9")
    try:
        number = Decimal(str(value))  # str(): the shortest text that round-trips, no noise
    except InvalidOperation:
        raise ConfigError(field, value, "a number, e.g. 99.9") from None
    if not number.is_finite():
        raise ConfigError(field, value, "a finite number")
    return number


@dataclass(frozen=True)
class Objective:
    """One SLO: the share of good events (``objective`` percent) over the SLO period.

    ``availability``: a request is bad when the server failed it (HTTP 5xx; gRPC
    ``UNKNOWN``, ``DEADLINE_EXCEEDED``, ``UNIMPLEMENTED``, ``INTERNAL``, ``UNAVAILABLE``,
    ``DATA_LOSS``).  ``latency``: a request is bad when it took longer than ``threshold``
    seconds, which must be a bucket boundary.  ``target`` is the HTTP route template or the
    fully qualified gRPC method (``pkg.Service/Method``); ``None`` means every one.
    """

    name: str
    kind: Kind
    objective: Decimal
    protocol: Protocol = "http"
    target: str | None = None
    threshold: Decimal | None = None
    description: str = ""
    labels: Pairs = ()
    """Added to every rule of the objective (Sloth's ``labels``)."""
    page: AlertExtras = AlertExtras()
    ticket: AlertExtras = AlertExtras()
    alert: str = ""
    """The burn-rate alerts' name (default ``<Name>ErrorBudgetBurn``)."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(
                "name", self.name, "lowercase letters, digits and '-' (at most 64), e.g. 'orders'"
            )
        if not Decimal(0) < self.objective < Decimal(100):
            raise ConfigError("objective", self.objective, "a percentage between 0 and 100")
        if self.protocol not in ("http", "grpc"):
            raise ConfigError("protocol", self.protocol, "'http' or 'grpc'")
        if self.target is not None and (not isinstance(self.target, str) or not self.target):
            raise ConfigError("target", self.target, "a route or method name, or None for all")
        _check_threshold(self.kind, self.threshold)
        if self.alert and not _LABEL.match(self.alert):
            raise ConfigError("alert", self.alert, "an alert name: letters, digits and _")

    @property
    def error_budget(self) -> Decimal:
        """The allowed share of bad events: ``99.9`` -> ``0.001``."""
        return (Decimal(100) - self.objective) / Decimal(100)

    @property
    def ratio(self) -> Decimal:
        """The objective as a ratio: ``99.9`` -> ``0.999``."""
        return self.objective / Decimal(100)


def _check_threshold(kind: str, threshold: Decimal | None) -> None:
    if kind == "availability":
        if threshold is not None:
            raise ConfigError("threshold", threshold, "no threshold for an availability SLO")
        return
    if kind != "latency":
        raise ConfigError("kind", kind, "'availability' or 'latency'")
    if threshold is None or threshold not in HTTP_BUCKETS:
        raise ConfigError("threshold", threshold, _nearest_buckets(threshold))


def _nearest_buckets(threshold: Decimal | None) -> str:
    """What to say about a latency threshold that is not a boundary: the nearest ones."""
    every = ", ".join(str(b) for b in HTTP_BUCKETS)
    if threshold is None:
        return f"a latency threshold in seconds that is a histogram bucket boundary ({every})"
    at = bisect_left(HTTP_BUCKETS, threshold)
    near = [str(b) for b in HTTP_BUCKETS[max(at - 1, 0) : at + 1]]
    return (
        f"a histogram bucket boundary in seconds; the nearest are {' and '.join(near)} "
        f"(every boundary: {every}); a threshold between boundaries would count requests "
        "against the wrong limit"
    )


def availability(
    name: str,
    objective: float | str | Decimal,
    *,
    route: str | None = None,
    grpc_method: str | None = None,
    description: str = "",
) -> Objective:
    """An availability SLO for one HTTP ``route`` (template), one ``grpc_method`` or, with
    neither, every HTTP request."""
    protocol, target = _target(route, grpc_method)
    return Objective(
        name,
        "availability",
        as_decimal("objective", objective),
        protocol,
        target,
        None,
        description,
    )


def latency(
    name: str,
    objective: float | str | Decimal,
    *,
    threshold: float | str | Decimal,
    route: str | None = None,
    grpc_method: str | None = None,
    description: str = "",
) -> Objective:
    """A latency SLO: ``objective`` percent of requests finish within ``threshold`` seconds
    (a bucket boundary of the duration histogram)."""
    protocol, target = _target(route, grpc_method)
    limit = as_decimal("threshold", threshold)
    return Objective(
        name, "latency", as_decimal("objective", objective), protocol, target, limit, description
    )


def _target(route: str | None, grpc_method: str | None) -> tuple[Protocol, str | None]:
    if route is not None and grpc_method is not None:
        raise ConfigError("grpc_method", grpc_method, "either route or grpc_method, not both")
    if grpc_method is not None:
        return "grpc", grpc_method
    return "http", route


@dataclass(frozen=True)
class Spec:
    """A service's objectives over one SLO period (``period_days``, 30 by default).

    ``namespace`` is the service's ``metrics_namespace`` (the prefix of every metric name)
    when it sets one; ``match`` adds label matchers to every selector (``job``, say, when
    one Prometheus scrapes several services).
    """

    service: str
    objectives: tuple[Objective, ...]
    period_days: int = 30
    namespace: str | None = None
    match: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.service, str) or not self.service:
            raise ConfigError("service", self.service, "the service name, e.g. 'checkout'")
        if not isinstance(self.period_days, int) or not 7 <= self.period_days <= 90:
            raise ConfigError("period_days", self.period_days, "a whole number of days, 7 to 90")
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            raise ConfigError("objectives", names, "objectives with distinct names")
        for label, value in self.match:
            if not _LABEL.match(label) or not isinstance(value, str):
                raise ConfigError("match", dict(self.match), "label names mapped to values")

    @property
    def matchers(self) -> dict[str, str]:
        """The extra label matchers as a mapping."""
        return dict(self.match)

    @classmethod
    def of(
        cls,
        service: str,
        objectives: Sequence[Objective],
        *,
        period_days: int = 30,
        namespace: str | None = None,
        match: Mapping[str, str] | None = None,
    ) -> Spec:
        """A spec from any sequence of objectives."""
        pairs = tuple(sorted((match or {}).items()))
        return cls(service, tuple(objectives), period_days, namespace, pairs)
