"""One limit policy for every signal: how long a value may be and how many attributes a
record may carry.

The same two numbers bound span attributes, log records (the stdout line and the
OpenTelemetry log record alike: fields and the message) and metric label values, with the
standard ``OTEL_*`` variables where the OpenTelemetry specification names one
(``OTEL_ATTRIBUTE_*``, ``OTEL_SPAN_ATTRIBUTE_*``, ``OTEL_LOGRECORD_ATTRIBUTE_*``; see the
docs/limits.md).  Values are cut before anything expensive is done
with them (formatting, parsing, redaction of a query string).

The process's policy (:func:`policy`) is what ``setup()`` pushed here (:func:`configure`);
the modules that cut read it.  Everything here is pure and never raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "DEFAULT",
    "AttributeLimits",
    "Limits",
    "configure",
    "cut_attributes",
    "cut_value",
    "policy",
]


@dataclass(frozen=True, slots=True)
class AttributeLimits:
    """The limits of one kind of record: characters per value, attributes per record."""

    value_length: int = 4096
    count: int = 128


@dataclass(frozen=True, slots=True)
class Limits:
    """The process's limits: spans, log records, metric label values."""

    spans: AttributeLimits = AttributeLimits()
    log_records: AttributeLimits = AttributeLimits()
    label_value_length: int = 4096


DEFAULT: Final = Limits()


def cut_value(value: Any, length: int) -> Any:
    """``value`` with every string in it at most ``length`` characters (bytes: at most
    ``length`` bytes), the elements of a list or tuple included, as the OpenTelemetry
    specification cuts attribute values.  Anything else is returned as it is; an
    unchanged value is the same object."""
    kind = type(value)
    if kind is str or kind is bytes:
        return value if len(value) <= length else value[:length]
    if kind is list or kind is tuple:
        items = [cut_value(item, length) if type(item) in (str, bytes) else item for item in value]
        if all(new is old for new, old in zip(items, value, strict=False)):
            return value
        return items if kind is list else tuple(items)
    return value


def cut_attributes(attributes: Mapping[str, Any], limits: AttributeLimits) -> dict[str, Any]:
    """A copy of ``attributes`` with at most ``limits.count`` entries (the first ones
    kept) and every value cut by :func:`cut_value`."""
    length = limits.value_length
    kept = list(attributes.items())[: limits.count]
    return {key: cut_value(value, length) for key, value in kept}


_policy = DEFAULT


def policy() -> Limits:
    """The process's limits (the defaults until ``setup()``)."""
    return _policy


def configure(limits: Limits = DEFAULT) -> None:
    """Make ``limits`` the process's policy (called by ``setup()``; ``testing.reset()``
    restores the defaults)."""
    global _policy
    _policy = limits
