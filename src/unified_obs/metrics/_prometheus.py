"""The OpenTelemetry -> Prometheus rules that need a whole scrape, applied as it is read.

The values live in ``prometheus_client``; :func:`plan` says what a scrape shows and
:class:`Translated` is what the stock encoders read instead of the registry itself (the
text writer, ``_text_format``, reads the plan directly).  Per the specification
(``compatibility/prometheus_and_openmetrics.md``) it

- adds ``otel_scope_name`` and ``otel_scope_version`` to every sample of the library's own
  instruments (metrics recorded through the OpenTelemetry API carry their own scope's,
  see ``_otlp_bridge``), unless the exporter option ``without_scope_info`` is on
  (:func:`set_scope_labels`): then no sample carries them;
- merges families of one name and type into one family, so that an OpenTelemetry-API
  metric named like one of ours (contrib's ``http.server.request.duration``) stays
  visible beside ours, told apart by its scope labels; of two families of one name with
  different types the first is kept and the other dropped with a warning naming both
  (a scrape must not carry two ``# TYPE`` lines for one name);
- merges samples that became one series: attributes that differ only where Prometheus
  label names cannot (``a.b`` and ``a_b`` in two attribute sets) map to one label set,
  and two samples of one series would make Prometheus keep one of them.  Counters,
  histograms and summaries are summed (each is a sum over the attribute sets that fold
  into the series), ``_created`` keeps the earliest, anything else keeps the last value;
  one warning names the family;
- appends ``target_info``, the service's resource attributes as one info metric (none
  with ``without_target_info``, see :func:`set_resource`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from prometheus_client.metrics_core import InfoMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from .._semconv import SCOPE_NAME, library_version
from ._names import prom_labels

__all__ = [
    "Family",
    "Translated",
    "forget",
    "plan",
    "scope_labels",
    "set_own_names",
    "set_resource",
    "set_scope_labels",
]

_log: Final = logging.getLogger("unified_obs")
_warned: set[tuple[str, ...]] = set()
_state: dict[str, Any] = {"own": lambda: set(), "target": None, "scope_labels": True}
_SCOPE_KEYS: Final = ("otel_scope_name", "otel_scope_version")
_SUMMED: Final = frozenset({"counter", "histogram", "summary", "gaugehistogram"})
_BUCKET_LABELS: Final = ("le", "quantile")
NO_LABELS: Final[Mapping[str, str]] = {}


def set_own_names(own: Callable[[], set[str]]) -> None:
    """Name the families that are the library's own instruments (they get its scope)."""
    _state["own"] = own


def set_resource(attributes: Mapping[str, object] | None) -> None:
    """Expose ``attributes`` (a resource's) as ``target_info``; ``None`` for none."""
    _state["target"] = None if not attributes else target_info(attributes)


def set_scope_labels(enabled: bool) -> None:
    """Whether samples carry ``otel_scope_name``/``otel_scope_version`` (the exporter
    option ``without_scope_info`` is ``not enabled``)."""
    _state["scope_labels"] = enabled


def scope_labels() -> dict[str, str]:
    """The labels our own families get: our scope's, or none with the scope labels off."""
    if not _state["scope_labels"]:
        return {}
    return {"otel_scope_name": SCOPE_NAME, "otel_scope_version": library_version()}


def forget() -> None:
    """No resource, scope labels on, every clash may be warned about again (``testing.reset``)."""
    _state.update(target=None, scope_labels=True)
    _warned.clear()


def target_info(attributes: Mapping[str, object]) -> Metric:
    """The ``target_info`` family: the resource attributes as labels, value 1."""
    return InfoMetricFamily("target", "Target metadata", value=prom_labels(attributes))


@dataclass
class Family:
    """One family of a scrape: ``parts`` are collected families whose samples all get
    the part's extra labels; ``exact`` when no two samples can be one series (a single
    family of our own instruments: their label sets are unique by construction)."""

    head: Metric
    parts: list[tuple[Metric, Mapping[str, str]]] = field(default_factory=list)
    exact: bool = False

    def merged(self) -> Metric:
        """The family as one ``Metric``: the collected one when nothing changes, else a
        copy with each part's labels, samples of one series merged (``prometheus_client``
        collectors may hand out the same object twice, so nothing is changed in place)."""
        if self.exact and len(self.parts) == 1 and not self.parts[0][1]:
            return self.head
        copy = Metric(self.head.name, self.head.documentation, self.head.type, self.head.unit)
        copy.samples = [
            s._replace(labels={**s.labels, **extra}) if extra else s
            for family, extra in self.parts
            for s in family.samples
        ]
        if not self.exact:
            copy.samples = _one_sample_per_series(copy)
        return copy


class Translated(Collector):
    """What the stock encoders read in place of ``registry``: its families, translated."""

    def __init__(self, registry: Collector) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        """The registry's families after :func:`plan`, then ``target_info``."""
        for family in plan(self._registry.collect()):
            yield family.merged()


def plan(families: Iterable[Metric], own: set[str] | None = None) -> list[Family]:
    """One :class:`Family` per name: our scope's labels on the families named in ``own``
    (default: the library's instruments; not on an OpenTelemetry-API family of the same
    name: it has its own scope's), none on any with the scope labels off; ``target_info``
    last."""
    own = _state["own"]() if own is None else own
    scope = scope_labels()
    scoped = bool(scope)
    merged: dict[str, Family] = {}
    for collected in families:
        ours = collected.name in own and not _scoped(collected)
        extra = scope if ours and scoped else NO_LABELS
        if not scoped and not ours and _scoped(collected):
            collected = _without_scope(collected)
        first = merged.get(collected.name)
        if first is None:
            merged[collected.name] = Family(collected, [(collected, extra)], exact=ours)
        elif first.head.type == collected.type:
            first.parts.insert(0 if ours else len(first.parts), (collected, extra))
            first.exact = False  # ours first: where two cannot be merged, ours is shown
        elif ours:  # ours keeps its name; the other one is the one left out
            merged[collected.name] = Family(collected, [(collected, extra)], exact=True)
            _warn_clash(collected, first.head)
        else:
            _warn_clash(first.head, collected)
    if _state["target"] is not None:
        merged.setdefault("target", Family(_state["target"], [(_state["target"], NO_LABELS)]))
    return list(merged.values())


def _scoped(family: Metric) -> bool:
    """Whether ``family`` came with its scope (an OpenTelemetry-API family named like ours)."""
    return bool(family.samples) and "otel_scope_name" in family.samples[0].labels


def _without_scope(family: Metric) -> Metric:
    copy = Metric(family.name, family.documentation, family.type, family.unit)
    copy.samples = [
        s._replace(labels={k: v for k, v in s.labels.items() if k not in _SCOPE_KEYS})
        for s in family.samples
    ]
    return copy


def _one_sample_per_series(family: Metric) -> list[Sample]:
    """``family``'s samples with those of one series merged into the first's place: summed
    for counters, histograms and summaries (``_created``: the earliest), else the last
    value.  A histogram series is merged whole, and only with one of the same buckets (a
    sum over different buckets is no histogram): of two with different buckets the first
    is kept."""
    if _unique(family):
        return family.samples  # the common case: nothing to merge
    groups: dict[_Key, list[Sample]] = {}
    merged = False
    for key, series in _series_of(family):
        kept = groups.get(key)
        if kept is None:
            groups[key] = series
            continue
        merged = True
        others = {_identity(s): s for s in series}
        if _shape(kept) == _shape(series):
            groups[key] = [_combined(family, s, others.get(_identity(s))) for s in kept]
        else:
            _warn_once(("buckets", family.name), _BUCKETS, family.name)
    if merged:
        _warn_once(("series", family.name), _MERGED, family.name)
    return [sample for series in groups.values() for sample in series]


_Key = tuple[str, frozenset[tuple[str, str]]]


def _unique(family: Metric) -> bool:
    """Whether no two samples of ``family`` are one series: its ``_count`` samples tell
    for a histogram or summary (one per series: 1 in 18 of a histogram's samples)."""
    counted = family.name + ("_gcount" if family.type == "gaugehistogram" else "_count")
    samples = [s for s in family.samples if s.name == counted] or family.samples
    return len({(s.name, frozenset(s.labels.items())) for s in samples}) == len(samples)


def _series_of(family: Metric) -> Iterator[tuple[_Key, list[Sample]]]:
    """The samples of ``family`` by series: a histogram's or summary's samples of one label
    set (buckets, count, sum) together, any other sample alone; each with its key."""
    if family.type not in ("histogram", "gaugehistogram", "summary"):
        for sample in family.samples:
            yield (sample.name, frozenset(sample.labels.items())), [sample]
        return
    runs: dict[_Key, list[tuple[set[Any], list[Sample]]]] = {}
    for sample in family.samples:
        labels = frozenset((k, v) for k, v in sample.labels.items() if k not in _BUCKET_LABELS)
        found = runs.setdefault(("", labels), [(set(), [])])
        identity = _identity(sample)
        if identity in found[-1][0]:  # a second series with these labels begins
            found.append((set(), []))
        found[-1][0].add(identity)
        found[-1][1].append(sample)
    for key, series in runs.items():
        for _, one in series:
            yield key, one


def _identity(sample: Sample) -> tuple[str, str | None, str | None]:
    return (sample.name, sample.labels.get("le"), sample.labels.get("quantile"))


def _shape(series: list[Sample]) -> set[tuple[str, str | None, str | None]]:
    """What a series is made of (bucket bounds, quantiles), ``_created`` aside."""
    return {_identity(s) for s in series if not s.name.endswith("_created")}


def _combined(family: Metric, kept: Sample, other: Sample | None) -> Sample:
    if other is None:
        return kept
    if kept.name.endswith("_created"):
        value = min(kept.value, other.value)
    elif family.type in _SUMMED:
        value = kept.value + other.value
    else:
        return other
    return kept._replace(value=value, exemplar=other.exemplar or kept.exemplar)


_BUCKETS: Final = (
    "unified_obs: histogram %r has two series with the same labels and different buckets; "
    "/metrics shows the first"
)
_MERGED: Final = (
    "unified_obs: metric %r has samples that map to one series (attribute names that "
    "differ only by characters Prometheus does not allow, e.g. 'a.b' and 'a_b', or one "
    "metric from two scopes without the scope labels); /metrics shows each series once "
    "(counters and histograms summed, gauges the last value)"
)


def _warn_clash(kept: Metric, dropped: Metric) -> None:
    _warn_once(
        ("clash", kept.name, kept.type, dropped.type),
        "unified_obs: two metrics share the Prometheus name %r as a %s and as a %s; the %s "
        "is left out of /metrics (OTLP still carries both). Rename one of them.",
        kept.name,
        kept.type,
        dropped.type,
        dropped.type,
    )


def _warn_once(key: tuple[str, ...], message: str, *args: object) -> None:
    if key not in _warned:
        _warned.add(key)
        _log.warning(message, *args)
