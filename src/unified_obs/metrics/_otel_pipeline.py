"""What ``setup()`` gets from the metrics module: the OTel side and the OTLP exporter."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Final

from ..config import Settings

if TYPE_CHECKING:  # the SDK is imported when setup() builds the pipeline, not before
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter

    from ._otlp_bridge import Pusher

__all__ = ["MetricsPipeline", "build_exporter"]


class MetricsPipeline:
    """What ``setup()`` wires: the SDK ``MeterProvider`` and the OTLP pusher."""

    def __init__(self, provider: MeterProvider | None, pusher: Pusher | None) -> None:
        self.provider: Final = provider
        self.pusher: Final = pusher

    def flush(self, timeout: float) -> bool:
        """Export now (no-op without an exporter)."""
        return self.pusher.flush(timeout) if self.pusher is not None else True

    def close(self, timeout: float) -> bool:
        """Export a last time and stop."""
        ok = self.pusher.close(timeout) if self.pusher is not None else True
        if self.provider is not None:
            self.provider.shutdown(timeout_millis=max(timeout, 0.001) * 1000)
        return ok


def build_exporter(settings: Settings) -> MetricExporter | None:
    """The exporter ``settings`` ask for (OTLP/HTTP, OTLP/gRPC, console) or ``None``."""
    choice = settings.exporter("metrics")
    if choice == "none":
        return None
    if choice == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter(out=sys.stdout)  # the current stream, not the one at import
    from .._otlp import otlp_exporter

    exporter: MetricExporter = otlp_exporter("metrics", settings.otlp("metrics"))
    return exporter
