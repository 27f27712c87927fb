"""OpenTelemetry's logs API and SDK, which live in underscored modules
(``opentelemetry._logs``, ``opentelemetry.sdk._logs``) although they are the only way to
emit OpenTelemetry log records; imported by ``logs/`` at ``setup()`` only.

* ``otel.logs_record_limits``: the ``LoggerProvider`` takes ``log_record_limits`` and
  ``LogRecordLimits`` takes the per-record attribute count and length (SDK 1.39+), so
  the SDK applies our limits instead of reading (and rejecting) the environment itself.
  The probe builds both.  Fallback: the SDK's own limits (records arrive already cut).
"""

from __future__ import annotations

from typing import Any, Final

from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    ConsoleLogRecordExporter,
    LogRecordExporter,
)

from ._probes import decide, register

__all__ = [
    "LOGS_RECORD_LIMITS",
    "BatchLogRecordProcessor",
    "ConsoleLogRecordExporter",
    "LogRecordExporter",
    "LoggerProvider",
    "SeverityNumber",
    "provider_limits",
]

LOGS_RECORD_LIMITS: Final = "otel.logs_record_limits"


def _limits(count: int, length: int) -> Any:
    from opentelemetry.sdk._logs import LogRecordLimits

    return LogRecordLimits(
        max_attributes=count,
        max_attribute_length=length,
        max_log_record_attributes=count,
        max_log_record_attribute_length=length,
    )


def _limits_are_taken() -> bool:
    limits = _limits(3, 5)
    provider = LoggerProvider(shutdown_on_exit=False, log_record_limits=limits)
    provider.shutdown()
    return True


def provider_limits(count: int, length: int) -> dict[str, Any]:
    """``LoggerProvider`` keyword arguments that give it our per-record limits (``count``
    attributes of at most ``length`` characters); empty where it takes none."""
    if not decide(LOGS_RECORD_LIMITS, _limits_are_taken):
        return {}
    return {"log_record_limits": _limits(count, length)}


register({LOGS_RECORD_LIMITS: _limits_are_taken})
