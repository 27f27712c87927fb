"""The library's own instruments on ``/metrics``, written from their series.

A scrape at the cardinality limit is 40,000 lines, nearly all of them our instruments';
``prometheus_client``'s ``collect()`` builds a ``Sample`` (and a label dict) for each before
a line is written.  Here each series keeps its label text from one scrape to the next
(the sorted ``name="value"`` pairs with our scope's, split where a bucket's ``le`` goes),
and a line is that text, the value (in OpenMetrics, the exemplar) and nothing else.  The
parent metrics (``_instruments.Definition.build``, registered in the default registry) are
:class:`OwnCounter`, :class:`OwnHistogram` and :class:`OwnGauge`, whose ``collect()`` yields
nothing while :func:`deferred` is in force, so that the registry's other collectors are
read as usual and ours are not read twice.  Instruments whose parent is of another class
(the process metrics' view, ``_process``) are left to their own collectors.

The lines are those ``generate_latest`` (text 0.0.4) and ``openmetrics.generate_latest``
(1.0.0) write for the same families, which may come in another place of the scrape;
``tests/test_text_format.py`` compares them.  The ``_created`` stamp of a series is read
once, from its ``prometheus_client`` child's own ``collect()``; a series' texts are kept
only while the series exists (at most the cardinality limit per instrument).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Protocol

from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Exemplar

from ._names import prom_label
from ._text_format import LabelTexts, exemplar_text, go_float, help_line, openmetrics_help

__all__ = [
    "OwnCounter",
    "OwnGauge",
    "OwnHistogram",
    "deferred",
    "forget",
    "names",
    "set_instruments",
    "write",
    "write_openmetrics",
]

_deferred: Final = contextvars.ContextVar("unified_obs_own_families_deferred", default=False)
_state: dict[str, Any] = {"instruments": lambda: []}


class OwnCounter(PromCounter):
    """A ``prometheus_client`` counter whose families :func:`write` writes during a scrape."""

    def collect(self) -> Iterable[Metric]:
        """Nothing while :func:`deferred` is in force, else the usual families."""
        return () if _deferred.get() else super().collect()


class OwnHistogram(PromHistogram):
    """A ``prometheus_client`` histogram whose families :func:`write` writes during a scrape."""

    def collect(self) -> Iterable[Metric]:
        """Nothing while :func:`deferred` is in force, else the usual families."""
        return () if _deferred.get() else super().collect()


class OwnGauge(PromGauge):
    """A ``prometheus_client`` gauge whose families :func:`write` writes during a scrape."""

    def collect(self) -> Iterable[Metric]:
        """Nothing while :func:`deferred` is in force, else the usual families."""
        return () if _deferred.get() else super().collect()


_OWN: Final = (OwnCounter, OwnHistogram, OwnGauge)


class Instrument(Protocol):
    """What is read of an instrument (``_instruments.Instrument``, which imports this)."""

    @property
    def definition(self) -> Any:
        """Its definition (label names)."""

    @property
    def prom_metric(self) -> Any:
        """The ``prometheus_client`` parent metric."""

    def series(self) -> list[tuple[tuple[str, ...], Any]]:
        """Every series with its label values."""


def set_instruments(source: Callable[[], Sequence[Instrument]]) -> None:
    """Name where the library's instruments are found (``metrics`` pushes it down)."""
    _state["instruments"] = source


def forget() -> None:
    """Drop every series' texts (``testing.reset``: the instruments are gone)."""
    global _series
    _series = {}


@contextmanager
def deferred() -> Iterator[None]:
    """Within the block, our parent metrics' ``collect()`` yields nothing (this context)."""
    token = _deferred.set(True)
    try:
        yield
    finally:
        _deferred.reset(token)


def names() -> set[str]:
    """The family names :func:`write` writes (without ``_total``)."""
    return {i.prom_metric.describe()[0].name for i in _own()}


def _own() -> list[Instrument]:
    return [i for i in _state["instruments"]() if isinstance(i.prom_metric, _OWN)]


@dataclass
class _Series:
    """What a series' lines are made of, kept while the series exists."""

    parent: Any  # the prometheus_client parent the texts were made for
    labels: str  # the sorted pairs with our scope's, for every line but a bucket's
    before_le: str  # the pairs before ``le`` (with a trailing comma)
    after_le: str  # the pairs after ``le`` (with a leading comma)
    created: str | None = None  # the ``_created`` value, read once


_series: dict[tuple[int, tuple[str, ...]], _Series] = {}


def write(out: list[str], scope: Mapping[str, str], texts: LabelTexts) -> None:
    """Our instruments' families, as ``generate_latest`` writes them, appended to ``out``."""
    _write_all(_write_instrument, out, scope, texts)


def write_openmetrics(out: list[str], scope: Mapping[str, str], texts: LabelTexts) -> None:
    """Our instruments' families, as ``openmetrics.generate_latest`` writes them
    (exemplars, ``# UNIT``, ``_created`` with each series), appended to ``out``."""
    _write_all(_write_openmetrics_instrument, out, scope, texts)


_Kept = dict[tuple[int, tuple[str, ...]], "_Series"]


def _write_all(
    write_one: Callable[[list[str], Instrument, Mapping[str, str], LabelTexts, _Kept], None],
    out: list[str],
    scope: Mapping[str, str],
    texts: LabelTexts,
) -> None:
    global _series
    if _state.get("scope") != scope:  # the scope labels were turned on or off
        _series, _state["scope"] = {}, dict(scope)
    kept: _Kept = {}
    for instrument in _own():
        write_one(out, instrument, scope, texts, kept)
    _series = kept  # only the series that still exist keep their texts


def _write_openmetrics_instrument(
    out: list[str],
    instrument: Instrument,
    scope: Mapping[str, str],
    texts: LabelTexts,
    kept: _Kept,
) -> None:
    parent = instrument.prom_metric
    [head] = parent.describe()
    name = head.name
    label_names = [prom_label(label) for label in instrument.definition.labels]
    out.append(openmetrics_help(head))
    les: list[str] | None = None
    for key, bound in instrument.series():
        series = _texts(parent, label_names, key, scope, texts, kept)
        if head.type == "counter":
            exemplar = bound.exemplar()
            shown = exemplar_text(exemplar) if exemplar else ""
            out.append(f"{name}_total{series.labels} {go_float(bound.value())}{shown}\n")
        elif head.type == "histogram":
            bounds, counts, total, exemplars = bound.snapshot()
            les = les or [go_float(b) for b in (*bounds, float("inf"))]
            _histogram_lines(out, name, series, les, counts, total, bounds, exemplars)
        else:
            out.append(f"{name}{series.labels} {go_float(bound.value())}\n")
        stamp = _created(series, key) if head.type != "gauge" else ""
        if stamp:
            out.append(f"{name}_created{series.labels} {stamp}\n")


def _write_instrument(
    out: list[str],
    instrument: Instrument,
    scope: Mapping[str, str],
    texts: LabelTexts,
    kept: _Kept,
) -> None:
    parent = instrument.prom_metric
    [head] = parent.describe()
    label_names = [prom_label(label) for label in instrument.definition.labels]
    lines: list[str] = []
    created: list[str] = []
    les: list[str] | None = None
    for key, bound in instrument.series():
        series = _texts(parent, label_names, key, scope, texts, kept)
        if head.type == "counter":
            lines.append(f"{head.name}_total{series.labels} {go_float(bound.value())}\n")
        elif head.type == "histogram":
            bounds, counts, total, _ = bound.snapshot()
            les = les or [go_float(b) for b in (*bounds, float("inf"))]
            _histogram_lines(lines, head.name, series, les, counts, total, bounds)
        else:
            lines.append(f"{head.name}{series.labels} {go_float(bound.value())}\n")
        stamp = _created(series, key) if head.type != "gauge" else ""
        if stamp:
            created.append(f"{head.name}_created{series.labels} {stamp}\n")
    out.append(help_line(head, "_total" if head.type == "counter" else "", head.type))
    out.extend(lines)
    if created:
        out.append(help_line(head, "_created", "gauge"))
        out.extend(created)


def _histogram_lines(
    lines: list[str],
    name: str,
    series: _Series,
    les: list[str],
    counts: list[float],
    total: float,
    bounds: list[float],
    exemplars: Sequence[Exemplar | None] = (),
) -> None:
    """A histogram series' lines; with ``exemplars`` (OpenMetrics), each bucket's."""
    accumulated = 0.0
    for index, (le, count) in enumerate(zip(les, counts, strict=True)):
        accumulated += count
        bucket = f'{series.before_le}le="{le}"{series.after_le}'
        exemplar = exemplars[index] if exemplars else None
        shown = exemplar_text(exemplar) if exemplar else ""
        lines.append(f"{name}_bucket{{{bucket}}} {go_float(accumulated)}{shown}\n")
    lines.append(f"{name}_count{series.labels} {go_float(accumulated)}\n")
    if not bounds or bounds[0] >= 0:  # as prometheus_client: no _sum with negative buckets
        lines.append(f"{name}_sum{series.labels} {go_float(total)}\n")


def _texts(
    parent: Any,
    label_names: list[str],
    key: tuple[str, ...],
    scope: Mapping[str, str],
    texts: LabelTexts,
    kept: _Kept,
) -> _Series:
    """The series' texts: as last scrape made them, else made now."""
    found = _series.get((id(parent), key))
    if found is None or found.parent is not parent:
        pairs = sorted({**dict(zip(label_names, key, strict=True)), **scope}.items())
        parts = [texts[pair] for pair in pairs]
        before = [texts[pair] for pair in pairs if pair[0] < "le"]
        after = [texts[pair] for pair in pairs if pair[0] > "le"]
        found = _Series(
            parent,
            "{" + ",".join(parts) + "}" if parts else "",
            "".join(f"{text}," for text in before),
            "".join(f",{text}" for text in after),
        )
    kept[(id(parent), key)] = found
    return found


def _created(series: _Series, key: tuple[str, ...]) -> str:
    """The series' ``_created`` value as text ("" when ``prometheus_client`` writes none)."""
    if series.created is None:
        child = series.parent.labels(*key) if key else series.parent
        found = [
            sample.value
            for metric in MetricWrapperBase.collect(child)
            for sample in metric.samples
            if sample.name.endswith("_created")
        ]
        series.created = go_float(found[0]) if found else ""
    return series.created
