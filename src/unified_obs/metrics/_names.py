"""Metric naming: OpenTelemetry instrument names and units mapped to Prometheus names.

One pure function set used for our own instruments and for metrics that other
instrumentations record through the OpenTelemetry API, so ``/metrics`` and OTLP
agree: ``http.server.request.duration`` with unit ``s`` is exposed as
``http_server_request_duration_seconds``; counters get ``_total`` on exposition.

The rules are the specification's "OTLP Metric points to Prometheus"
(``compatibility/prometheus_and_openmetrics.md``), as the Collector's Prometheus exporter
applies them, so that a scrape of ``/metrics`` and OTLP pushed through a Collector into
Prometheus give the same names: units become words and are never rescaled (``ms`` is
``_milliseconds``), ``1`` adds no suffix, label names lose invalid characters and runs of
``_``, and attributes that land on one label name share it, joined by ``;``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from typing import Final

from ..errors import ConfigError

__all__ = [
    "attribute_text",
    "check_label_names",
    "check_name",
    "prom_label",
    "prom_labels",
    "prom_name",
    "unit_word",
]

_OTEL_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-/]{0,254}$")
_LABEL_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_INVALID: Final = re.compile(r"[^A-Za-z0-9_:]+")
_INVALID_LABEL: Final = re.compile(r"[^A-Za-z0-9_]+")
_UNITS: Final = {
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "min": "minutes",
    "h": "hours",
    "d": "days",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tebibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "%": "percent",
}
"""Unit words, the Collector's table (another unit is kept, sanitised)."""
_PER_UNITS: Final = {
    "s": "second",
    "m": "minute",
    "h": "hour",
    "d": "day",
    "w": "week",
    "mo": "month",
    "y": "year",
}
"""Words after ``_per_`` (``By/s`` -> ``bytes_per_second``), the Collector's table."""
_RESERVED_LABELS: Final = frozenset({"le", "quantile", "pid"})
_EXPOSITION_LABELS: Final = frozenset({"le", "quantile"})
"""Label names the exposition writes itself (histogram buckets, summary quantiles): an
attribute of that name gets the ``key_`` prefix, so it can never clash with them."""


def _sanitize(text: str) -> str:
    return _INVALID.sub("_", text).strip("_")


def unit_word(unit: str, kind: str) -> str:
    """The Prometheus unit suffix for a UCUM ``unit`` (``s`` -> ``seconds``); ``""`` if none.

    Annotations in braces (``{request}``) carry no unit, nor does ``1`` (the
    specification's former ``1`` -> ``ratio`` rule is gone).  ``kind`` is kept for callers
    that name it; no unit depends on it any more.
    """
    unit = re.sub(r"\{[^}]*\}", "", unit).strip()
    if not unit or unit == "1":
        return ""
    if "/" in unit:
        top, _, bottom = unit.partition("/")
        top_word = unit_word(top, kind)
        bottom_word = _PER_UNITS.get(bottom.strip(), _sanitize(bottom))
        if not bottom_word:
            return top_word
        return f"{top_word}_per_{bottom_word}" if top_word else f"per_{bottom_word}"
    return _UNITS.get(unit, _sanitize(unit))


def prom_name(name: str, unit: str = "", kind: str = "", namespace: str | None = None) -> str:
    """The Prometheus family name for an OTel ``name``/``unit`` (without ``_total``)."""
    base = re.sub(r"_+", "_", _sanitize(name)) or "metric"
    if base[0].isdigit():
        base = "_" + base
    word = unit_word(unit, kind)
    if word and not base.endswith("_" + word):
        base = f"{base}_{word}"
    if kind == "counter" and base.endswith("_total"):
        base = base[: -len("_total")]
    if namespace:
        base = f"{_sanitize(namespace)}_{base}"
    return base


def prom_label(name: str) -> str:
    """A Prometheus label name for an OTel attribute key (``http.route`` -> ``http_route``).

    Invalid characters become ``_`` and runs of ``_`` one ``_`` (so no result starts with
    the reserved ``__``); a leading digit or ``_`` gets the prefix ``key`` (``2xx`` ->
    ``key_2xx``, ``_private`` -> ``key_private``), as the Collector does.
    """
    label = re.sub(r"_+", "_", _INVALID_LABEL.sub("_", name))
    if label[:1].isdigit():
        return "key_" + label
    return "key" + label if label[:1] == "_" else label or "key"


def prom_labels(attributes: Mapping[str, object] | None) -> dict[str, str]:
    """Prometheus labels for OTel attributes: names by :func:`prom_label`, values by
    :func:`attribute_text`; attributes that map to one name share it, their values joined
    by ``;`` in the order of the original keys; ``le`` and ``quantile`` become ``key_le``
    and ``key_quantile``."""
    grouped: dict[str, list[tuple[str, str]]] = {}
    for key, value in (attributes or {}).items():
        label = prom_label(str(key))
        label = "key_" + label if label in _EXPOSITION_LABELS else label
        grouped.setdefault(label, []).append((str(key), attribute_text(value)))
    return {label: ";".join(text for _, text in sorted(pairs)) for label, pairs in grouped.items()}


def attribute_text(value: object) -> str:
    """An attribute value as text, the specification's way for non-OTLP formats: strings as
    they are, booleans ``true``/``false``, numbers in decimal (``NaN``, ``Infinity``),
    bytes in base64, sequences as JSON arrays."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    if isinstance(value, Iterable):
        return json.dumps([_json_item(item) for item in value], separators=(",", ":"))
    return str(value)


def _json_item(item: object) -> object:
    if item is None or isinstance(item, (str, bool, int, float)):
        return item
    return attribute_text(item)


def check_name(name: object, kind: str) -> str:
    """Validate an instrument name at definition time; ``ConfigError`` otherwise."""
    if not isinstance(name, str) or not _OTEL_NAME.match(name):
        raise ConfigError(
            "name",
            name,
            "an instrument name: a letter, then letters, digits, '_', '.', '-' or '/' "
            "(at most 255 characters), e.g. 'http.server.request.duration'",
        )
    if kind == "counter" and re.search(r"[._]total$", name):
        raise ConfigError("name", name, "a counter name without the '_total' suffix (it is added)")
    return name


def check_label_names(labels: object, kind: str) -> tuple[str, ...]:
    """Validate label names (OTel attribute keys); ``ConfigError`` otherwise."""
    if isinstance(labels, str) or not isinstance(labels, (tuple, list)):
        raise ConfigError("labels", labels, "a tuple of label names, e.g. ('method', 'route')")
    names = tuple(labels)
    seen: set[str] = set()
    for label in names:
        if not isinstance(label, str) or not _LABEL_NAME.match(label) or label.startswith("__"):
            raise ConfigError(
                "labels", label, "a label name: letters, digits, '_' and '.', not starting '__'"
            )
        mapped = prom_label(label)
        if mapped in _RESERVED_LABELS:
            raise ConfigError(
                "labels", label, f"a label name other than {sorted(_RESERVED_LABELS)}"
            )
        if mapped in seen:
            raise ConfigError("labels", labels, "label names that stay distinct in Prometheus")
        seen.add(mapped)
    return names
