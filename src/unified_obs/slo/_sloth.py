"""A Sloth spec (``version: prometheus/v1``, or its Kubernetes form ``kind:
PrometheusServiceLevel``) as a :class:`~unified_obs.slo.Spec`.

Read: ``service``, ``labels`` (service and SLO), each SLO's ``name``, ``objective``,
``description`` and ``sli.events`` (``error_query`` and ``total_query``, which must read
the library's own metrics: see :mod:`._foreign_sli`), and ``alerting``: ``name``,
``labels`` and ``annotations`` of both alerts, and ``page_alert`` / ``ticket_alert``
``labels`` and ``annotations`` (the Kubernetes form's camelCase spellings too).  Refused
with a ``ConfigError`` naming it: ``sli.raw`` and ``sli.plugin`` (a ratio or a plugin
cannot be read back into request counts), SLO plugins, and an alert's ``disable`` or
``for`` (every objective gets both alerts, firing as the workbook's window pairs say, and
the tests that prove them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Final, TypeGuard

from ..errors import ConfigError
from ._foreign_sli import ForeignSli, Where, objective, one_where
from ._spec import AlertExtras, Objective, Spec, as_decimal, as_mapping, pairs

__all__ = ["is_sloth", "parse_sloth"]

_K8S: Final = ("sloth.slok.dev/v1", "PrometheusServiceLevel")


def is_sloth(data: object) -> TypeGuard[Mapping[str, Any]]:
    """Whether ``data`` is a Sloth spec (either form)."""
    if not isinstance(data, Mapping):
        return False
    return (
        data.get("version") == "prometheus/v1" or (data.get("apiVersion"), data.get("kind")) == _K8S
    )


def parse_sloth(data: Mapping[str, Any]) -> Spec:
    """The spec ``data`` describes, or ``ConfigError`` naming the first thing that cannot
    be honoured."""
    body = as_mapping("spec", data.get("spec", {}) if data.get("kind") == _K8S[1] else data)
    slos = body.get("slos")
    if not isinstance(slos, list) or not slos:
        raise ConfigError("slos", slos, "a non-empty list of SLOs")
    common = dict(pairs("labels", body.get("labels")))
    found = [_slo(f"slos[{i}]", entry, common) for i, entry in enumerate(slos)]
    _refuse("", body, "slo_plugins", "sloPlugins")
    return _spec(body.get("service"), found)


def _get(mapping: Mapping[str, Any], key: str) -> Any:
    """``key`` in snake_case, or the Kubernetes form's camelCase spelling of it."""
    first, *rest = key.split("_")
    return mapping.get(key, mapping.get(first + "".join(word.title() for word in rest)))


def _refuse(field: str, mapping: Mapping[str, Any], *keys: str) -> None:
    """A ``ConfigError`` for the first of ``keys`` set in ``mapping``."""
    for key in keys:
        if mapping.get(key):
            raise ConfigError(
                field + key, mapping[key], "nothing: unified_obs writes every objective's "
                "burn-rate alerts as the SRE workbook's window pairs say, with their tests",
            )  # fmt: skip


def _spec(service: object, found: list[tuple[Objective, Where]]) -> Spec:
    where = one_where("slos", found, "SLIs with the same job matchers")
    return Spec.of(service, [o for o, _ in found], namespace=where.namespace, match=where.match)  # type: ignore[arg-type]  # Spec checks it


def _slo(field: str, entry: object, common: Mapping[str, str]) -> tuple[Objective, Where]:
    entry = as_mapping(field, entry)
    sli = entry.get("sli")
    if not isinstance(sli, Mapping) or set(sli) != {"events"}:
        raise ConfigError(
            f"{field}.sli", sorted(sli) if isinstance(sli, Mapping) else sli,
            "sli.events with error_query and total_query (sli.raw and sli.plugin cannot be "
            "read back into the library's request counts)",
        )  # fmt: skip
    events = sli["events"]
    if not isinstance(events, Mapping):
        raise ConfigError(f"{field}.sli.events", events, "error_query and total_query")
    queries = ForeignSli(
        f"{field}.sli.events", _get(events, "total_query"), bad=_get(events, "error_query")
    )
    made, where = objective(
        entry.get("name"),  # type: ignore[arg-type]  # Objective checks it
        as_decimal(f"{field}.objective", entry.get("objective")),
        queries,
        str(entry.get("description", "")),
    )
    labels = {**common, **dict(pairs(f"{field}.labels", entry.get("labels")))}
    _refuse(f"{field}.", entry, "plugins")
    return _alerting(f"{field}.alerting", entry.get("alerting"), made, labels), where


def _alerting(
    field: str, alerting: object, made: Objective, labels: Mapping[str, str]
) -> Objective:
    alerting = as_mapping(field, alerting or {})
    shared_labels = dict(pairs(f"{field}.labels", alerting.get("labels")))
    shared_notes = dict(pairs(f"{field}.annotations", alerting.get("annotations")))
    extras = {
        which: _extras(f"{field}.{which}", _get(alerting, which) or {}, shared_labels, shared_notes)
        for which in ("page_alert", "ticket_alert")
    }
    return dataclasses.replace(
        made,
        labels=tuple(sorted(labels.items())),
        page=extras["page_alert"],
        ticket=extras["ticket_alert"],
        alert=str(alerting.get("name", "")),
    )


def _extras(
    field: str, alert: object, labels: Mapping[str, str], notes: Mapping[str, str]
) -> AlertExtras:
    alert = as_mapping(field, alert)
    _refuse(f"{field}.", alert, "disable", "for")
    own_labels = dict(pairs(f"{field}.labels", alert.get("labels")))
    own_notes = dict(pairs(f"{field}.annotations", alert.get("annotations")))
    return AlertExtras(
        tuple(sorted({**labels, **own_labels}.items())),
        tuple(sorted({**notes, **own_notes}.items())),
    )
