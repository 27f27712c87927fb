"""Lazy imports of optional extras, failing with the exact ``pip install`` line."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["otlp_grpc", "require"]


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise ``ImportError`` naming ``pip install 'unified-obs[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module} is not installed; install it with: pip install 'unified-obs[{extra}]'"
        ) from exc


def otlp_grpc(exporter_module: str) -> ModuleType:
    """One module of ``opentelemetry.exporter.otlp.proto.grpc`` (``trace_exporter``,
    ``_log_exporter``, ``metric_exporter``), from the ``[grpc]`` extra."""
    return require(f"opentelemetry.exporter.otlp.proto.grpc.{exporter_module}", "grpc")
