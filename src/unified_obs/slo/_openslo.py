"""OpenSLO v1 documents (``apiVersion: openslo/v1``) as a :class:`~unified_obs.slo.Spec`.

Read: every ``kind: SLO`` (one ``spec.service`` for the file), its ``indicator`` or an
``indicatorRef`` to a ``kind: SLI`` of the same file, ``budgetingMethod: Occurrences``,
one rolling ``timeWindow`` of whole days, and each of its ``objectives`` (``target`` or
``targetPercent``).  Indicators: a ``ratioMetric`` (``good`` or ``bad`` besides ``total``)
or a ``thresholdMetric`` over the duration histogram with an objective ``op: lte`` /
``lt`` and ``value`` (seconds), each a Prometheus query of the library's own metrics (see
:mod:`._foreign_sli`).  ``Service`` and ``DataSource`` documents are skipped.  Anything
else is refused with a ``ConfigError`` naming it: ``Timeslices`` budgeting, calendar
windows, ``alertPolicies`` and the alert kinds (the rules carry the SRE workbook's
burn-rate alerts, and the tests that prove them, instead).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..errors import ConfigError
from ._foreign_sli import ForeignSli, Where, objective, one_where
from ._spec import Objective, Spec, as_decimal, as_mapping

__all__ = ["is_openslo", "parse_openslo"]

_SKIPPED: Final = frozenset({"Service", "DataSource"})
_DAYS: Final = {"d": 1, "w": 7}
_DURATION: Final = re.compile(r"^(\d+)([dw])$")


def is_openslo(documents: Sequence[object]) -> bool:
    """Whether the file's documents are OpenSLO's."""
    return any(
        isinstance(d, Mapping) and str(d.get("apiVersion", "")).startswith("openslo/")
        for d in documents
    )


def parse_openslo(documents: Sequence[object]) -> Spec:
    """The spec the file's SLO documents describe, or ``ConfigError`` naming the first
    thing that cannot be honoured."""
    slos, slis = [], {}
    for index, document in enumerate(documents):
        field = f"document[{index}]"
        if not isinstance(document, Mapping) or document.get("apiVersion") != "openslo/v1":
            raise ConfigError(f"{field}.apiVersion", _get(document, "apiVersion"), "openslo/v1")
        kind = document.get("kind")
        if kind == "SLO":
            slos.append((field, document))
        elif kind == "SLI":
            slis[_name(field, document)] = document.get("spec")
        elif kind not in _SKIPPED:
            raise ConfigError(f"{field}.kind", kind, "SLO, SLI, Service or DataSource")
    if not slos:
        raise ConfigError("kind", None, "at least one document of kind SLO")
    return _spec([_slo(field, slo, slis) for field, slo in slos])


def _get(document: object, key: str) -> object:
    return document.get(key) if isinstance(document, Mapping) else document


def _name(field: str, document: Mapping[str, Any]) -> str:
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if not isinstance(name, str):
        raise ConfigError(f"{field}.metadata.name", name, "a name")
    return name


@dataclass(frozen=True)
class _Slo:
    service: str
    period_days: int
    objectives: list[tuple[Objective, Where]]


def _spec(found: list[_Slo]) -> Spec:
    services = {slo.service for slo in found}
    if len(services) != 1:
        raise ConfigError("spec.service", sorted(services), "one service per file")
    periods = {slo.period_days for slo in found}
    if len(periods) != 1:
        raise ConfigError("spec.timeWindow", sorted(periods), "one period for every SLO")
    made = [pair for slo in found for pair in slo.objectives]
    where = one_where("indicator", made, "the same job matchers")
    return Spec.of(
        services.pop(),
        [o for o, _ in made],
        period_days=periods.pop(),
        namespace=where.namespace,
        match=where.match,
    )


def _slo(field: str, document: Mapping[str, Any], slis: Mapping[str, object]) -> _Slo:
    name = _name(field, document)
    spec = as_mapping(f"{field}.spec", document.get("spec"))
    for refused in ("alertPolicies",):
        if spec.get(refused):
            raise ConfigError(
                f"{field}.spec.{refused}", "...", "none: the rules carry the SRE workbook's "
                "multi-window burn-rate alerts (and tests proving them) instead",
            )  # fmt: skip
    method = spec.get("budgetingMethod")
    if method != "Occurrences":
        raise ConfigError(
            f"{field}.spec.budgetingMethod", method, "Occurrences (the library counts requests)"
        )
    period = _period(f"{field}.spec.timeWindow", spec.get("timeWindow"))
    indicator = _indicator(f"{field}.spec", spec, slis)
    objectives = spec.get("objectives")
    if not isinstance(objectives, list) or not objectives:
        raise ConfigError(f"{field}.spec.objectives", objectives, "a non-empty list")
    made = [
        _objective(f"{field}.spec.objectives[{i}]", name, i, len(objectives), entry, indicator)
        for i, entry in enumerate(objectives)
    ]
    service = spec.get("service")
    if not isinstance(service, str):
        raise ConfigError(f"{field}.spec.service", service, "the service name")
    return _Slo(service, period, made)


@dataclass(frozen=True)
class _Indicator:
    field: str  # where it is written, for error messages
    spec: Mapping[str, Any]


def _indicator(field: str, spec: Mapping[str, Any], slis: Mapping[str, object]) -> _Indicator:
    """The SLI's own spec: inline, or the ``kind: SLI`` document it names."""
    if "indicatorRef" in spec:
        ref = spec["indicatorRef"]
        if ref not in slis:
            raise ConfigError(f"{field}.indicatorRef", ref, "the name of an SLI in this file")
        return _Indicator(f"SLI {ref}.spec", as_mapping(f"SLI {ref}.spec", slis[ref]))
    indicator = as_mapping(f"{field}.indicator", spec.get("indicator"))
    where = f"{field}.indicator.spec"
    return _Indicator(where, as_mapping(where, indicator.get("spec")))


def _period(field: str, windows: object) -> int:
    """Whole days of the one rolling window (``28d``, ``4w``)."""
    if not isinstance(windows, list) or len(windows) != 1 or not isinstance(windows[0], Mapping):
        raise ConfigError(field, windows, "one time window")
    window = windows[0]
    if window.get("calendar") or window.get("isRolling") is False:
        raise ConfigError(f"{field}[0].isRolling", False, "a rolling window (true)")
    found = _DURATION.match(str(window.get("duration", "")))
    if found is None:
        raise ConfigError(f"{field}[0].duration", window.get("duration"), "days or weeks: 28d, 4w")
    return int(found[1]) * _DAYS[found[2]]


def _objective(
    field: str, name: str, index: int, count: int, entry: object, indicator: _Indicator
) -> tuple[Objective, Where]:
    entry = as_mapping(field, entry)
    if "targetPercent" in entry:
        percent = as_decimal(f"{field}.targetPercent", entry["targetPercent"])
    else:
        percent = as_decimal(f"{field}.target", entry.get("target")) * 100
    named = name if count == 1 else f"{name}-{index + 1}"
    text = str(entry.get("displayName", ""))
    return objective(named, percent.normalize(), _queries(field, entry, indicator), text)


def _queries(field: str, entry: Mapping[str, Any], indicator: _Indicator) -> ForeignSli:
    """The indicator's queries; a threshold's ``op: lt`` reads as "within the bucket
    boundary" (a histogram cannot tell a request of exactly ``value`` apart)."""
    spec, where = indicator.spec, indicator.field
    if "ratioMetric" in spec:
        ratio = as_mapping(f"{where}.ratioMetric", spec["ratioMetric"])
        where += ".ratioMetric"
        return ForeignSli(
            where,
            _query(f"{where}.total", ratio.get("total")),
            bad=_query(f"{where}.bad", ratio["bad"]) if "bad" in ratio else None,
            good=_query(f"{where}.good", ratio["good"]) if "good" in ratio else None,
        )
    if "thresholdMetric" in spec:
        if entry.get("op") not in ("lte", "lt"):
            raise ConfigError(f"{field}.op", entry.get("op"), "lte or lt: good requests are fast")
        return ForeignSli(
            f"{where}.thresholdMetric",
            _query(f"{where}.thresholdMetric", spec["thresholdMetric"]),
            threshold=as_decimal(f"{field}.value", entry.get("value")),
        )
    raise ConfigError(where, sorted(spec), "ratioMetric or thresholdMetric")


def _query(field: str, metric: object) -> str:
    """The Prometheus query of one ``metricSource``."""
    source = as_mapping(f"{field}.metricSource", as_mapping(field, metric).get("metricSource"))
    if str(source.get("type", "")).lower() != "prometheus":
        raise ConfigError(f"{field}.metricSource.type", source.get("type"), "Prometheus")
    spec = as_mapping(f"{field}.metricSource.spec", source.get("spec"))
    query = spec.get("query", spec.get("promql"))
    if not isinstance(query, str):
        raise ConfigError(f"{field}.metricSource.spec.query", query, "a PromQL query")
    return query
