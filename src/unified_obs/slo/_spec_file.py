"""An SLO spec file (YAML) as a :class:`~unified_obs.slo.Spec`::

    service: demo-shop
    period_days: 30            # optional, 30 by default
    namespace: shop            # optional: the service's metrics_namespace
    match: {job: demo-shop}    # optional: label matchers added to every selector
    slos:
      - name: orders-available
        objective: 99.9        # percent of good requests
        http_route: /orders/{order_id}
      - name: orders-fast
        objective: 99
        latency: 0.25          # seconds; must be a bucket boundary
        http_route: /orders/{order_id}
      - name: get-order-available
        objective: 99.5
        grpc_method: shop.Orders/Get

Unknown keys are errors (a typo must not silently drop a matcher).

A Sloth spec (``version: prometheus/v1``) or OpenSLO v1 documents are read too, when their
SLIs query the library's own metrics (:mod:`._sloth`, :mod:`._openslo`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from ..errors import ConfigError, require_extra
from ._openslo import is_openslo, parse_openslo
from ._sloth import is_sloth, parse_sloth
from ._spec import Objective, Spec, as_mapping, availability, latency

__all__ = ["load", "parse"]

_SPEC_KEYS: Final = frozenset({"service", "period_days", "namespace", "match", "slos"})
_SLO_KEYS: Final = frozenset(
    {"name", "objective", "latency", "http_route", "grpc_method", "description"}
)


def load(path: str | Path) -> Spec:
    """Read and check the YAML spec at ``path`` (needs PyYAML: the ``slo`` extra)."""
    yaml = require_extra("yaml", "slo")
    text = Path(path).read_text(encoding="utf-8")
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ConfigError("spec", str(path), f"valid YAML ({exc})") from None
    if is_openslo(documents):
        return parse_openslo(documents)
    if len(documents) != 1:
        raise ConfigError("spec", f"{len(documents)} YAML documents", "one (or OpenSLO's)")
    return parse(documents[0])


def parse(data: object) -> Spec:
    """A spec from its parsed form (a mapping, as in the file): ours, Sloth's or one
    OpenSLO document."""
    if is_sloth(data):
        return parse_sloth(data)
    if is_openslo([data]):
        return parse_openslo([data])
    top = _mapping("spec", data, _SPEC_KEYS)
    slos = top.get("slos")
    if not isinstance(slos, list) or not slos:
        raise ConfigError("slos", slos, "a non-empty list of objectives")
    match = top.get("match") or {}
    if not isinstance(match, Mapping):
        raise ConfigError("match", match, "a mapping of label names to values")
    return Spec.of(
        top.get("service"),  # type: ignore[arg-type]  # Spec checks it
        [_objective(entry) for entry in slos],
        period_days=top.get("period_days", 30),
        namespace=top.get("namespace"),
        match={str(k): str(v) for k, v in match.items()},
    )


def _objective(entry: object) -> Objective:
    slo = _mapping("slos[]", entry, _SLO_KEYS)
    where = {
        "route": slo.get("http_route"),
        "grpc_method": slo.get("grpc_method"),
        "description": str(slo.get("description", "")),
    }
    if "latency" in slo:
        return latency(slo.get("name"), slo.get("objective"), threshold=slo["latency"], **where)  # type: ignore[arg-type]
    return availability(slo.get("name"), slo.get("objective"), **where)  # type: ignore[arg-type]


def _mapping(field: str, data: object, keys: frozenset[str]) -> dict[str, Any]:
    data = as_mapping(field, data)
    unknown = sorted(str(k) for k in data if k not in keys)
    if unknown:
        raise ConfigError(field, unknown, "only the keys " + ", ".join(sorted(keys)))
    return dict(data)
