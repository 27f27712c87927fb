"""The one place the OTLP exporters of every signal are built (HTTP, or gRPC from the
``[grpc]`` extra)."""

from __future__ import annotations

import importlib
from typing import Any, Final

from ..config import OtlpTarget, Signal
from ..errors import require_extra

__all__ = ["otlp_exporter"]

# signal -> (module under opentelemetry.exporter.otlp.proto.{http,grpc}, class name)
_OTLP_EXPORTERS: Final = {
    "traces": ("trace_exporter", "OTLPSpanExporter"),
    "logs": ("_log_exporter", "OTLPLogExporter"),
    "metrics": ("metric_exporter", "OTLPMetricExporter"),
}


def otlp_exporter(signal: Signal, target: OtlpTarget) -> Any:
    """The OTLP exporter of ``signal`` for ``target``: gRPC from the ``[grpc]`` extra
    (RESOURCE_EXHAUSTED retried only on ``RetryInfo``, as the specification says), or
    HTTP/protobuf with a fork-safe session (``requests`` is imported only here)."""
    module_name, class_name = _OTLP_EXPORTERS[signal]
    options = {
        "endpoint": target.endpoint,
        "headers": dict(target.headers),
        "timeout": target.timeout,
    }
    if target.protocol == "grpc":
        module = require_extra(f"opentelemetry.exporter.otlp.proto.grpc.{module_name}", "grpc")
        from .._compat.grpc_exporter import honour_retry_info

        return honour_retry_info(getattr(module, class_name)(**options))
    from .session import ForkSafeSession

    module = importlib.import_module(f"opentelemetry.exporter.otlp.proto.http.{module_name}")
    return getattr(module, class_name)(**options, session=ForkSafeSession())
