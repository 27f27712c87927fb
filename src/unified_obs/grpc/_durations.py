"""The gRPC call-duration histograms (``rpc.server.call.duration``, ``rpc.client.call.duration``)
defined through :mod:`unified_obs.metrics` with the semconv buckets."""

from __future__ import annotations

from typing import Final

from .. import metrics

__all__ = ["CLIENT_LABELS", "LABELS", "call_duration"]

LABELS: Final = ("rpc.system.name", "rpc.method", "rpc.response.status_code", "error.type")
"""Low-cardinality attributes shared by spans and metrics, in ``labels(*values)`` order."""
CLIENT_LABELS: Final = (*LABELS, "server.address", "server.port")
"""The client's: the server it calls too (``rpc.client.call.duration`` requires it)."""

_DESCRIPTIONS: Final = {
    "server": "Duration of gRPC calls handled by this server",
    "client": "Duration of gRPC calls made by this client",
}


def call_duration(side: str) -> metrics.Histogram:
    """The histogram for ``side`` (``server`` or ``client``); get-or-create."""
    return metrics.histogram(
        f"rpc.{side}.call.duration",
        _DESCRIPTIONS[side],
        labels=CLIENT_LABELS if side == "client" else LABELS,
        unit="s",
        buckets=metrics.SEMCONV_DURATION_BUCKETS,
    )
