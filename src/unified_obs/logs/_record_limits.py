"""A log record within the log record limits, for the stdout line as for the OTLP record.

:func:`within` leaves a record that fits as it is (the same object) and otherwise
returns a cut copy: at most ``count`` fields of the caller's (the record's own fields,
the trace ids and the service fields are always kept), every string at most
``value_length`` characters, and a nested value whose JSON text is longer than that
replaced by its JSON text, cut.  The renderer asks only when a line is longer than the
value length or has more fields than the count, so a common line pays two ``len`` calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from ..limits import AttributeLimits

__all__ = ["KEPT", "within"]

KEPT: Final = frozenset(
    {
        "timestamp",
        "level",
        "event",
        "logger",
        "trace_id",
        "span_id",
        "trace_flags",
        "exception",
        "service.name",
        "service.version",
        "service.instance.id",
        "deployment.environment.name",
    }
)
"""Fields never dropped by the count (the record's own, its identity and context)."""
_OURS: Final = frozenset({"timestamp", "level", "trace_id", "span_id", "trace_flags"})
"""Fields the pipeline writes itself, short by construction: never cut."""
_CONTAINERS: Final = (dict, list, tuple, set, frozenset)


def within(
    record: Mapping[str, Any], limit: AttributeLimits, to_json: Callable[[Any], bytes]
) -> Mapping[str, Any]:
    """``record`` if it keeps ``limit``, else a copy that does (see the module)."""
    length = limit.value_length
    budget = limit.count
    cut: dict[str, Any] = {}
    changed = False
    for key, value in record.items():
        if key not in KEPT:
            if budget <= 0:
                changed = True
                continue
            budget -= 1
        new = value if key in _OURS else _cut(value, length, to_json)
        changed = changed or new is not value
        cut[key] = new
    return cut if changed else record


def _cut(value: Any, length: int, to_json: Callable[[Any], bytes]) -> Any:
    if isinstance(value, str):
        return value if len(value) <= length else value[:length]
    if isinstance(value, bytes):
        return value if len(value) <= length else value[:length]
    if isinstance(value, _CONTAINERS) and len(value) > 0:
        text = to_json(value)
        if len(text) > length:
            return text[:length].decode("utf-8", "ignore")
    return value
