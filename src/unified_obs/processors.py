"""Log processors, at their public path; they are defined in :mod:`unified_obs.logs.processors`."""

from __future__ import annotations

from .logs.processors import (
    AddFields,
    ConsoleRenderer,
    Enrich,
    JSONRenderer,
    RedactFields,
    add_trace_context,
    format_exceptions,
)

__all__ = [
    "AddFields",
    "ConsoleRenderer",
    "Enrich",
    "JSONRenderer",
    "RedactFields",
    "add_trace_context",
    "format_exceptions",
]
