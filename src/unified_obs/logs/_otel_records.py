"""Log records exported as OpenTelemetry log records: the SDK ``LoggerProvider`` and the
processor that emits each record to it (imported by ``configure``, at ``setup()`` only).

An exception goes out as the conventions' ``exception.type``, ``exception.message`` and
``exception.stacktrace`` attributes, not as one JSON attribute."""

from __future__ import annotations

import sys
import time
from typing import Any, Final, cast

from opentelemetry.sdk.resources import Resource
from structlog.typing import EventDict, WrappedLogger

from .. import limits
from .._compat.opentelemetry_log_batch import ExactBatchLogRecordProcessor
from .._compat.opentelemetry_logs import (
    ConsoleLogRecordExporter,
    LoggerProvider,
    LogRecordExporter,
    SeverityNumber,
    provider_limits,
)
from .._otlp import otlp_exporter
from .._semconv import SCHEMA_URL, exception_attributes, library_version
from ..config import Settings
from ..limits import AttributeLimits, cut_value
from ..redact import scrub_json, scrub_urls
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
    provider.add_log_record_processor(ExactBatchLogRecordProcessor(exporter))
    return provider


def _sdk_limits(limit: AttributeLimits) -> dict[str, Any]:
    """Our limits for the SDK too, where it takes them: records arrive already cut, so it
    never drops (nor warns), and it never reads (nor rejects) the environment itself."""
    return provider_limits(limit.count, limit.value_length)


def _build_exporter(settings: Settings) -> LogRecordExporter | None:
    choice = settings.exporter("logs")
    if choice == "none" or settings.sdk_disabled:
        return None
    if choice == "console":
        return ConsoleLogRecordExporter(
            out=sys.stdout,  # the current stream: the SDK's default is the one at its import
            formatter=lambda record: record.to_json(indent=None) + "\n",
        )
    return cast(LogRecordExporter, otlp_exporter("logs", settings.otlp("logs")))


_RESERVED: Final = frozenset(
    {"timestamp", "level", "event", "trace_id", "span_id", "trace_flags", "exception", "exc_info"}
)


class OtlpEmitter:
    """Processor that also emits the record as an OTel log record (trace context included)."""

    __slots__ = ("_logger",)

    def __init__(self, provider: LoggerProvider) -> None:
        self._logger = provider.get_logger("unified_obs", library_version(), SCHEMA_URL)

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
    """The record's fields as attributes: at most ``limit.count``, each value cut; an
    exception as the ``exception.*`` attributes."""
    attributes: dict[str, Any] = {}
    for key, value in _exception(event_dict).items():
        attributes[key] = cut_value(scrub_urls(value), limit.value_length)
    for key, value in event_dict.items():
        if key in _RESERVED:
            continue
        if len(attributes) >= limit.count:
            break
        attributes[key] = cut_value(_attribute(value), limit.value_length)
    return attributes


def _exception(event_dict: EventDict) -> dict[str, str]:
    """``exception.*`` from the record: from ``exc_info`` while it is there (the console
    renderer keeps it), else from the structured ``exception`` the JSON lines carry."""
    exc = _raised(event_dict.get("exc_info"))
    if exc is not None:
        return exception_attributes(exc)
    stacks = event_dict.get("exception")
    if isinstance(stacks, list) and stacks and all(isinstance(s, dict) for s in stacks):
        return _from_structured(stacks)
    if isinstance(stacks, str) and stacks:
        return {"exception.stacktrace": stacks}
    return {}


def _raised(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return exc_info[1] if isinstance(exc_info[1], BaseException) else None
    if exc_info is True:
        return sys.exc_info()[1]
    return None


def _frame_line(frame: dict[str, Any]) -> str:
    where = f'  File "{frame.get("filename")}", line {frame.get("lineno")}'
    return f"{where}, in {frame.get('name')}\n"


def _from_structured(stacks: list[dict[str, Any]]) -> dict[str, str]:
    """The attributes from structlog's exception dicts (the raised exception first, then
    its causes): the trace text reads as Python prints it, causes first."""
    raised = stacks[0]
    blocks = []
    for stack in reversed(stacks):
        frames = "".join(_frame_line(frame) for frame in stack.get("frames") or ())
        blocks.append(
            "Traceback (most recent call last):\n"
            f"{frames}{stack.get('exc_type')}: {stack.get('exc_value')}\n"
        )
    return {
        "exception.type": str(raised.get("exc_type", "")),
        "exception.message": str(raised.get("exc_value", "")),
        "exception.stacktrace": "\n".join(blocks),
    }


_to_json: Final = proc.JSONRenderer()


def _attribute(value: Any) -> Any:
    """An OTel attribute value: primitives as they are, ints beyond 64 bits as decimal text,
    anything else as JSON text; the user-info of URLs in any text redacted."""
    if isinstance(value, str):
        return scrub_urls(value)
    if isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else str(value)
    return scrub_json(_to_json(None, "", {"v": value}))[5:-1].decode()
