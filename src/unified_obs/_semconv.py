"""The semantic-conventions release this library follows, and what every signal shares.

Every instrumentation scope we create (tracers, the metrics scope) carries the library's
version and :data:`SCHEMA_URL`, so a backend can translate our attribute names when the
conventions move: a newer release is adopted by changing :data:`SEMCONV_VERSION` together
with the names that release changes, never by sending old and new names side by side.
"""

from __future__ import annotations

import functools
import traceback
from typing import Final

__all__ = [
    "INT_ATTRIBUTES",
    "SCHEMA_URL",
    "SCOPE_NAME",
    "SEMCONV_VERSION",
    "exception_attributes",
    "exception_type",
    "library_version",
]

SEMCONV_VERSION: Final = "1.44.0"
"""The released OpenTelemetry semantic conventions the names and values follow."""

SCHEMA_URL: Final = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
"""The schema URL set on every instrumentation scope."""

SCOPE_NAME: Final = "unified_obs"
"""The instrumentation scope of the library's own metrics."""

INT_ATTRIBUTES: Final = frozenset(
    {
        "http.response.status_code",
        "server.port",
        "client.port",
        "network.peer.port",
        "network.local.port",
        "websocket.close.code",
        "cpython.gc.generation",
    }
)
"""Attributes whose convention type is ``int``: metric series keep label values as strings
(one key per series), and the OTLP bridge sends these back as integers."""


def exception_type(exc: BaseException) -> str:
    """``exception.type``: the fully-qualified class name (builtins by their bare name)."""
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module in ("builtins", "", None) else f"{module}.{cls.__qualname__}"


def exception_attributes(exc: BaseException) -> dict[str, str]:
    """The ``exception`` event's attributes: type, message and the stack trace as Python
    prints it; no ``exception.escaped`` (deprecated by the conventions)."""
    return {
        "exception.type": exception_type(exc),
        "exception.message": str(exc),
        "exception.stacktrace": "".join(
            traceback.format_exception(type(exc), exc, exc.__traceback__)
        ),
    }


@functools.cache
def library_version() -> str:
    """The installed ``unified-obs`` version (``"0+unknown"`` when not installed)."""
    from importlib import metadata

    try:
        return metadata.version("unified-obs")
    except metadata.PackageNotFoundError:
        return "0+unknown"
