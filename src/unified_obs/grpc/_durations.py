"""The gRPC call-duration histograms (``rpc.server.call.duration``, ``rpc.client.call.duration``)
defined through :mod:`unified_obs.metrics` with the semconv buckets."""

from __future__ import annotations

from typing import Final

from .. import metrics

__all__ = ["LABELS", "call_duration"]

LABELS: Final = ("rpc.system.name", "rpc.method", "rpc.status_code", "error.type")
"""Low-cardinality attributes shared by spans and metrics, in ``labels(*values)`` order."""

_DESCRIPTIONS: Final = {
    "server": "Duration of gRPC calls handled by this server",
    "client": "Duration of gRPC calls made by this client",
}


def call_duration(side: str) -> metrics.Histogram:
    """The histogram for ``side`` (``server`` or ``client``); get-or-create."""
    return metrics.histogram(
        f"rpc.{side}.call.duration",
        _DESCRIPTIONS[side],
        labels=LABELS,
        unit="s",
        buckets=metrics.SEMCONV_DURATION_BUCKETS,
    )
