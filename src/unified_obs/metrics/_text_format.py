"""The Prometheus text format (0.0.4) and OpenMetrics 1.0, written from a scrape's plan.

``prometheus_client``'s ``generate_latest`` functions re-validate every label name and
build every line through several helper calls; on a scrape at the cardinality limit
(4,000 series, 40,000 lines) that is most of the time.  :func:`write` and
:func:`write_openmetrics` produce the same bytes (``tests/test_text_format.py`` holds
them to that, byte for byte) from the families of :func:`_prometheus.plan`: each label
pair and sample name is escaped once per scrape, a family's extra labels (our scope's)
are added as the line is written instead of by copying its samples, and common values
skip the Go float formatting.  Only the formats a Prometheus server asks for are written
here (text 0.0.4; OpenMetrics 1.0.0; names escaped with underscores); any other that the
``Accept`` header selects goes through ``prometheus_client``'s encoders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Final

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import escape_label_name, escape_metric_name
from prometheus_client.samples import Exemplar, Sample
from prometheus_client.utils import floatToGoString

from ._prometheus import Family

__all__ = [
    "LabelTexts",
    "exemplar_text",
    "go_float",
    "help_line",
    "openmetrics_help",
    "write",
    "write_openmetrics",
]

_TEXT_TYPES: Final = {
    "counter": ("_total", "counter"),
    "info": ("_info", "gauge"),
    "stateset": ("", "gauge"),
    "gaugehistogram": ("", "histogram"),
    "unknown": ("", "untyped"),
}
"""How ``generate_latest`` names and types each OpenMetrics type in the text format."""
_SEPARATE: Final = ("_created", "_gsum", "_gcount")
"""Samples that the text format shows as a gauge family of their own, after the family."""


def write(
    families: Iterable[Family],
    first: Callable[[list[str], LabelTexts], None] | None = None,
) -> bytes:
    """``families`` in the text format, as ``generate_latest`` writes them; ``first``
    writes families of its own ahead of them (``_own_families``)."""
    return _write_all(families, first, _write_family, "")


class LabelTexts(dict[tuple[str, str], str]):
    """One scrape's ``name="value"`` texts, each made once: a scrape at the cardinality
    limit has 40,000 lines but a few thousand distinct label pairs (kept for one scrape
    only, so nothing grows)."""

    def __missing__(self, pair: tuple[str, str]) -> str:
        name, value = pair
        text = self[pair] = f'{escape_label_name(name)}="{_escaped(value)}"'
        return text


def _write_family(
    out: list[str],
    head: Metric,
    parts: Iterable[tuple[Metric, Mapping[str, str]]],
    texts: LabelTexts,
) -> None:
    suffix, kind = _TEXT_TYPES.get(head.type, ("", head.type))
    out.append(help_line(head, suffix, kind))
    separate: dict[str, list[str]] = {}
    later = {head.name + end: end for end in _SEPARATE}
    names: dict[str, str] = {}
    for metric, extra in parts:
        for sample in metric.samples:
            sample_name = names.get(sample.name)
            if sample_name is None:
                sample_name = names[sample.name] = escape_metric_name(sample.name)
            line = _line(sample_name, sample, extra, texts)
            end = later.get(sample.name)
            if end is None:
                out.append(line)
            else:
                separate.setdefault(end, []).append(line)
    for end, lines in sorted(separate.items()):
        out.append(help_line(head, end, "gauge"))
        out.extend(lines)


def help_line(head: Metric, suffix: str, kind: str) -> str:
    """The ``# HELP`` and ``# TYPE`` lines of ``head``'s family named with ``suffix``."""
    help_text = head.documentation.replace("\\", r"\\").replace("\n", r"\n")
    name = escape_metric_name(head.name + suffix)
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"


def _line(name: str, sample: Sample, extra: Mapping[str, str], texts: LabelTexts) -> str:
    labels = {**sample.labels, **extra} if extra else sample.labels
    timestamp = sample.timestamp
    stamp = "" if timestamp is None else f" {int(float(timestamp) * 1000):d}"
    value = go_float(sample.value)
    if not labels:
        return f"{name} {value}{stamp}\n"
    pairs = ",".join([texts[pair] for pair in sorted(labels.items())])
    return f"{name}{{{pairs}}} {value}{stamp}\n"


def write_openmetrics(
    families: Iterable[Family],
    first: Callable[[list[str], LabelTexts], None] | None = None,
) -> bytes:
    """``families`` in OpenMetrics 1.0.0, as ``openmetrics.generate_latest`` writes them;
    ``first`` writes families of its own ahead of them (``_own_families``)."""
    return _write_all(families, first, _write_openmetrics_family, "# EOF\n")


def _write_all(
    families: Iterable[Family],
    first: Callable[[list[str], LabelTexts], None] | None,
    write_family: Callable[
        [list[str], Metric, Iterable[tuple[Metric, Mapping[str, str]]], LabelTexts], None
    ],
    tail: str,
) -> bytes:
    out: list[str] = []
    texts = LabelTexts()
    if first is not None:
        first(out, texts)
    for family in families:
        parts = family.parts if family.exact else [(family.merged(), {})]
        write_family(out, family.head, parts, texts)
    out.append(tail)
    return "".join(out).encode("utf-8")


def _write_openmetrics_family(
    out: list[str],
    head: Metric,
    parts: Iterable[tuple[Metric, Mapping[str, str]]],
    texts: LabelTexts,
) -> None:
    out.append(openmetrics_help(head))
    names: dict[str, str] = {}
    for metric, extra in parts:
        for sample in metric.samples:
            if sample.native_histogram:  # not in OpenMetrics 1.0
                continue
            sample_name = names.get(sample.name)
            if sample_name is None:
                sample_name = names[sample.name] = escape_label_name(sample.name)
            labels = {**sample.labels, **extra} if extra else sample.labels
            pairs = ",".join([texts[pair] for pair in sorted(labels.items())])
            text = f"{sample_name}{{{pairs}}}" if pairs else sample_name
            value = "" if sample.value is None else go_float(sample.value)
            stamp = "" if sample.timestamp is None else f" {sample.timestamp}"
            exemplar = _exemplar(head, sample) if sample.exemplar else ""
            out.append(f"{text} {value}{stamp}{exemplar}\n")


def openmetrics_help(head: Metric) -> str:
    """The ``# HELP``, ``# TYPE`` and (with a unit) ``# UNIT`` lines of ``head``'s family."""
    name = escape_metric_name(head.name)
    lines = f"# HELP {name} {_escaped(head.documentation)}\n# TYPE {name} {head.type}\n"
    return lines + f"# UNIT {name} {head.unit}\n" if head.unit else lines


def _exemplar(head: Metric, sample: Sample) -> str:
    """`` # {labels} value [timestamp]`` as OpenMetrics writes an exemplar."""
    assert sample.exemplar is not None
    if not _takes_exemplar(head, sample):
        raise ValueError(
            f"Metric {head.name} has exemplars, but is not a histogram bucket or counter"
        )
    return exemplar_text(sample.exemplar)


def exemplar_text(exemplar: Exemplar) -> str:
    """`` # {labels} value [timestamp]``: an exemplar as OpenMetrics writes it."""
    labels = ",".join(f'{k}="{_escaped(v)}"' for k, v in sorted(exemplar.labels.items()))
    stamp = "" if exemplar.timestamp is None else f" {exemplar.timestamp}"
    return f" # {{{labels}}} {go_float(exemplar.value)}{stamp}"


def _takes_exemplar(head: Metric, sample: Sample) -> bool:
    if head.type == "counter":
        return sample.name.endswith("_total")
    if head.type == "gaugehistogram":
        return sample.name.endswith("_bucket")
    if head.type == "histogram":
        return sample.name.endswith("_bucket") or sample.name == head.name
    return False


def _escaped(text: str) -> str:
    if "\\" in text or "\n" in text or '"' in text:
        return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return text


def go_float(value: float) -> str:
    """``floatToGoString(value)``: ``repr`` as it is for the short finite values that are
    nearly all of them (Go and Python agree there), the full rules otherwise."""
    if type(value) is float:
        text = repr(value)
        if len(text) < 8 and text[-1] not in "fn":  # not inf or nan; at most 6 digits before "."
            return text
    result: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return result
