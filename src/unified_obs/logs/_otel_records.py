"""Log records exported as OpenTelemetry log records: the SDK ``LoggerProvider`` and the
processor that emits each record to it (imported by ``configure``, at ``setup()`` only)."""

from __future__ import annotations

import inspect
import time
from typing import Any, Final, cast

from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    ConsoleLogRecordExporter,
    LogRecordExporter,
)
from opentelemetry.sdk.resources import Resource
from structlog.typing import EventDict, WrappedLogger

from .. import limits
from .._otlp import otlp_exporter
from ..config import Settings
from ..limits import AttributeLimits, cut_value
from . import processors as proc

__all__ = ["OtlpEmitter", "build_provider"]

_SEVERITY: Final = {
    "debug": SeverityNumber.DEBUG,
    "info": SeverityNumber.INFO,
    "warning": SeverityNumber.WARN,
    "error": SeverityNumber.ERROR,
    "critical": SeverityNumber.FATAL,
}
_NOT_EXPORTED: Final = ("opentelemetry", "urllib3", "requests", "grpc")


def build_provider(settings: Settings, resource: Resource) -> LoggerProvider | None:
    exporter = _build_exporter(settings)
    if exporter is None:
        return None
    provider = LoggerProvider(
        resource=resource, shutdown_on_exit=False, **_sdk_limits(settings.limits().log_records)
    )
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    return provider


def _sdk_limits(limit: AttributeLimits) -> dict[str, Any]:
    """Our limits for the SDK too, where it takes them (1.39 and later): records arrive
    already cut, so it never drops (nor warns), and it never reads (nor rejects) the
    environment itself."""
    if "log_record_limits" not in inspect.signature(LoggerProvider).parameters:
        return {}
    from opentelemetry.sdk._logs import LogRecordLimits

    sdk_limits = LogRecordLimits(
        max_attributes=limit.count,
        max_attribute_length=limit.value_length,
        max_log_record_attributes=limit.count,
        max_log_record_attribute_length=limit.value_length,
    )
    return {"log_record_limits": sdk_limits}


def _build_exporter(settings: Settings) -> LogRecordExporter | None:
    choice = settings.exporter("logs")
    if choice == "none" or settings.sdk_disabled:
        return None
    if choice == "console":
        return ConsoleLogRecordExporter(formatter=lambda record: record.to_json(indent=None) + "\n")
    return cast(LogRecordExporter, otlp_exporter("logs", settings.otlp("logs")))


_RESERVED: Final = frozenset({"timestamp", "level", "event", "trace_id", "span_id", "trace_flags"})


class OtlpEmitter:
    """Processor that also emits the record as an OTel log record (trace context included)."""

    __slots__ = ("_logger",)

    def __init__(self, provider: LoggerProvider) -> None:
        self._logger = provider.get_logger("unified_obs")

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        if str(event_dict.get("logger", "")).startswith(_NOT_EXPORTED):
            return event_dict
        level = event_dict.get("level", "info")
        limit = limits.policy().log_records
        self._logger.emit(
            timestamp=time.time_ns(),
            severity_text=str(level).upper(),
            severity_number=_SEVERITY.get(level, SeverityNumber.INFO),
            body=cut_value(_attribute(event_dict.get("event")), limit.value_length),
            attributes=_attributes(event_dict, limit),
        )
        return event_dict


def _attributes(event_dict: EventDict, limit: AttributeLimits) -> dict[str, Any]:
    """The record's fields as attributes: at most ``limit.count``, each value cut."""
    attributes: dict[str, Any] = {}
    for key, value in event_dict.items():
        if key in _RESERVED:
            continue
        if len(attributes) >= limit.count:
            break
        attributes[key] = cut_value(_attribute(value), limit.value_length)
    return attributes


_to_json: Final = proc.JSONRenderer()


def _attribute(value: Any) -> Any:
    """An OTel attribute value: primitives as they are, ints beyond 64 bits as decimal text,
    anything else as JSON text."""
    if isinstance(value, (str, bool, float)):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else str(value)
    return _to_json(None, "", {"v": value})[5:-1].decode()
