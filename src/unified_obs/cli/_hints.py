"""The failure texts ``doctor`` shares between its OTLP/HTTP and OTLP/gRPC checks."""

from __future__ import annotations

from typing import Final

__all__ = ["CREDENTIALS", "REFUSED", "UNKNOWN_HOST"]

CREDENTIALS: Final = "credentials refused: check OTEL_EXPORTER_OTLP_HEADERS"
REFUSED: Final = "connection refused (nothing listens there)"
UNKNOWN_HOST: Final = "unknown host"
