"""A foreign spec's SLI queries read back into one of our objectives.

Sloth and OpenSLO write an SLI as PromQL; ours are built from the metrics the library
emits.  A foreign SLI maps when its queries select those metrics the way our rules would:

* total: ``<ns>_http_server_request_duration_seconds_count{...}`` (or
  ``rpc_server_call_duration_seconds_count``), equality matchers only: the route
  (``http_route``) or method (``rpc_method``) is the objective's target, any other label
  (``job``, ...) a matcher of the whole spec;
* availability: bad = the same series with the server-error matcher
  (``http_response_status_code=~"5.."``, or the gRPC server codes), good = the same with
  ``!~``;
* latency: good = ``..._bucket{le="0.25",...}`` over the same series, bad = total minus it.

Anything else is a :class:`~unified_obs.errors.ConfigError` saying what would be needed:
the rules could not prove what they alert on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from ..errors import ConfigError
from . import _promql
from ._promql import Matcher, Selector
from ._spec import Objective, Protocol, availability, latency

__all__ = ["ForeignSli", "Where", "objective", "one_where"]

_FAMILIES: Final[dict[str, tuple[Protocol, str]]] = {
    "http_server_request_duration_seconds": ("http", "http_route"),
    "rpc_server_call_duration_seconds": ("grpc", "rpc_method"),
}
_SERVER_ERRORS: Final[dict[Protocol, tuple[str, frozenset[str]]]] = {
    "http": ("http_response_status_code", frozenset({"5.."})),
    "grpc": (
        "rpc_response_status_code",
        frozenset(
            {
                "UNKNOWN",
                "DEADLINE_EXCEEDED",
                "UNIMPLEMENTED",
                "INTERNAL",
                "UNAVAILABLE",
                "DATA_LOSS",
            }
        ),
    ),
}
_EMITTED: Final = " or ".join(f"{name}_count / _bucket" for name in _FAMILIES)


@dataclass(frozen=True)
class ForeignSli:
    """The queries of one foreign SLI (``bad`` or ``good`` besides ``total``; for a
    threshold SLI, ``threshold`` and the histogram ``total`` reads)."""

    field: str
    total: object
    bad: object = None
    good: object = None
    threshold: Decimal | None = None


@dataclass(frozen=True)
class Where:
    """What the SLI's selectors say about the whole spec: the namespace and matchers."""

    namespace: str | None
    match: Mapping[str, str]


@dataclass(frozen=True)
class _Base:
    protocol: Protocol
    family: str  # the full family name, namespace included
    namespace: str | None
    matchers: frozenset[Matcher]
    target: str | None
    where: Where


def objective(
    name: str, percent: Decimal, sli: ForeignSli, description: str = ""
) -> tuple[Objective, Where]:
    """Our objective for ``sli``, and where it reads from; ``ConfigError`` when it does
    not map onto the metrics the library emits."""
    base = _base(f"{sli.field}.total", sli.total, "_count" if sli.threshold is None else "")
    target = {"route" if base.protocol == "http" else "grpc_method": base.target}
    threshold: Decimal | None
    if sli.threshold is not None:
        threshold = sli.threshold
    elif sli.good is not None:
        threshold = _good(f"{sli.field}.good", sli.good, base)
    elif sli.bad is not None:
        threshold = _bad(f"{sli.field}.bad", sli.bad, base)
    else:
        raise ConfigError(sli.field, None, "a good or a bad query besides the total")
    if threshold is None:
        return availability(name, percent, description=description, **target), base.where
    made = latency(name, percent, threshold=threshold, description=description, **target)
    return made, base.where


def one_where(field: str, found: Iterable[tuple[Objective, Where]], accepted: str) -> Where:
    """The one :class:`Where` every objective of ``found`` reads from; ``ConfigError``
    naming ``field`` (expecting ``accepted``) when their namespaces or matchers differ."""
    wheres = {(w.namespace, tuple(sorted(w.match.items()))): w for _, w in found}
    if len(wheres) != 1:
        raise ConfigError(field, sorted(map(str, wheres)), accepted)
    (where,) = wheres.values()
    return where


def _base(field: str, query: object, suffix: str) -> _Base:
    """The one series the total query counts."""
    found = _promql.selectors(field, query)
    if len({s.metric for s in found}) != 1:
        raise ConfigError(field, query, f"a query of one metric unified_obs emits ({_EMITTED})")
    selector = found[0]
    protocol, label, family, namespace = _family(field, selector.metric, suffix)
    if any(m.op != "=" for m in selector.matchers):
        raise ConfigError(field, query, 'equality matchers only (label="value") in the total')
    labels = {m.label: m.value for m in selector.matchers}
    target = labels.pop(label, None)
    return _Base(protocol, family, namespace, selector.matchers, target, Where(namespace, labels))


def _family(field: str, metric: str, suffix: str) -> tuple[Protocol, str, str, str | None]:
    suffixes = (suffix,) if suffix else ("", "_count", "_bucket", "_sum")
    for name, (protocol, label) in _FAMILIES.items():
        for end in suffixes:
            if metric == name + end:
                return protocol, label, name, None
            if metric.endswith(f"_{name}{end}"):
                return protocol, label, metric[: -len(end) or None], metric[: -len(name + end) - 1]
    raise ConfigError(
        field, metric, f"a metric unified_obs emits ({_EMITTED}, after the metrics_namespace)"
    )


def _good(field: str, query: object, base: _Base) -> Decimal | None:
    """A good query: the non-server-error requests (None) or a bucket (its boundary)."""
    selector = _one(field, query)
    if selector.metric == base.family + "_bucket":
        return _bucket(field, selector, base)
    _server_errors(field, selector, base, "!~")
    return None


def _bad(field: str, query: object, base: _Base) -> Decimal | None:
    """A bad query: the server errors (None) or the total minus a bucket (its boundary)."""
    found = _promql.selectors(field, query)
    buckets = [s for s in found if s.metric == base.family + "_bucket"]
    counts = [s for s in found if s not in buckets]
    if len(buckets) == 1 and counts and all(s == counts[0] for s in counts):
        _same(field, counts[0], base)
        return _bucket(field, buckets[0], base)
    _server_errors(field, _one(field, query), base, "=~")
    return None


def _one(field: str, query: object) -> Selector:
    found = _promql.selectors(field, query)
    if len(set(found)) != 1:
        raise ConfigError(field, query, "a query of one series set (one vector selector)")
    return found[0]


def _same(field: str, selector: Selector, base: _Base) -> None:
    if selector.metric != base.family + "_count" or selector.matchers != base.matchers:
        raise ConfigError(field, selector.metric, "the total query's series")


def _bucket(field: str, selector: Selector, base: _Base) -> Decimal:
    """The ``le`` of a bucket selector over the total's series."""
    le = [m for m in selector.matchers if m.label == "le"]
    if len(le) != 1 or le[0].op != "=" or selector.matchers - {le[0]} != base.matchers:
        raise ConfigError(field, selector.metric, 'the total\'s series with one le="<seconds>"')
    try:
        return Decimal(le[0].value)
    except ArithmeticError:
        raise ConfigError(field, le[0].value, "a bucket boundary in seconds") from None


def _server_errors(field: str, selector: Selector, base: _Base, op: str) -> None:
    """``selector`` is the total's series with the server-error matcher (``op``)."""
    label, codes = _SERVER_ERRORS[base.protocol]
    extra = selector.matchers - base.matchers
    wanted = f'{label}{op}"{"|".join(sorted(codes))}"'
    if (
        selector.metric != base.family + "_count"
        or not base.matchers <= selector.matchers
        or len(extra) != 1
        or next(iter(extra)).label != label
        or next(iter(extra)).op != op
        or frozenset(next(iter(extra)).value.split("|")) != codes
    ):
        raise ConfigError(
            field,
            _shown(selector),
            f"the total's series with {wanted} (what unified_obs counts as a server error), "
            f'or, for latency, its _bucket with le="<seconds>"',
        )


def _shown(selector: Selector) -> str:
    """``metric{label op "value", ...}`` as the query wrote it (for an error message)."""
    inside = ", ".join(f'{m.label}{m.op}"{m.value}"' for m in sorted(selector.matchers))
    return f"{selector.metric}{{{inside}}}"
