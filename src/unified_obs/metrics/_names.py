"""Metric naming: OpenTelemetry instrument names and units mapped to Prometheus names.

One pure function set used for our own instruments and for metrics that other
instrumentations record through the OpenTelemetry API, so ``/metrics`` and OTLP
agree: ``http.server.request.duration`` with unit ``s`` is exposed as
``http_server_request_duration_seconds``; counters get ``_total`` on exposition.
"""

from __future__ import annotations

import re
from typing import Final

from ..errors import ConfigError

__all__ = ["check_label_names", "check_name", "prom_label", "prom_name", "unit_word"]

_OTEL_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-/]{0,254}$")
_LABEL_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_INVALID: Final = re.compile(r"[^A-Za-z0-9_:]+")
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
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "bit": "bits",
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
_RESERVED_LABELS: Final = frozenset({"le", "quantile", "pid"})


def _sanitize(text: str) -> str:
    return _INVALID.sub("_", text).strip("_")


def unit_word(unit: str, kind: str) -> str:
    """The Prometheus unit suffix for a UCUM ``unit`` (``s`` -> ``seconds``); ``""`` if none.

    Annotations in braces (``{request}``) carry no unit; ``1`` is ``ratio`` for gauges.
    """
    unit = re.sub(r"\{[^}]*\}", "", unit).strip()
    if not unit:
        return ""
    if unit == "1":
        return "ratio" if kind == "gauge" else ""
    if "/" in unit:
        top, _, bottom = unit.partition("/")
        parts = [unit_word(top, "") or _sanitize(top), _UNITS.get(bottom, _sanitize(bottom))]
        return "_per_".join(p for p in parts if p) if parts[1] else parts[0]
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
    """A Prometheus label name for an OTel attribute key (``http.route`` -> ``http_route``)."""
    label = _INVALID.sub("_", name)
    return "_" + label if label[:1].isdigit() else label or "_"


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
