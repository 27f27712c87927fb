"""One empty OTLP export over gRPC, made as the OTLP/gRPC exporter makes it: what
``unified-obs doctor`` uses to check a gRPC endpoint.

A channel with TLS or without, as asked, waits for its HTTP/2 connection (the TLS
handshake included) within the timeout; then the signal's OTLP service gets an empty
``Export`` request (zero bytes: a valid protobuf message carrying no data) with the
configured metadata.  The answer is a status code's name only, never the server's
details (they may repeat what was sent).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import grpc

__all__ = ["NOT_CONNECTED", "connects", "export_empty"]

NOT_CONNECTED: Final = "NOT_CONNECTED"
"""No HTTP/2 connection within the timeout (nothing listens, or TLS and plaintext differ)."""

_SERVICES: Final = {
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
    "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
}


def export_empty(
    target: str,
    signal: str,
    *,
    secure: bool,
    metadata: Mapping[str, str],
    timeout: float,
    root_certificates: bytes | None = None,
) -> str:
    """The status code name (``"OK"``, ``"UNIMPLEMENTED"``, ...) of an empty export of
    ``signal`` to ``target`` (``host:port``), or :data:`NOT_CONNECTED`."""
    channel = _channel(target, secure, root_certificates)
    try:
        if not _ready(channel, timeout):
            return NOT_CONNECTED
        export = channel.unary_unary(f"/{_SERVICES[signal]}/Export")  # bytes both ways
        pairs = [(key.lower(), value) for key, value in metadata.items()]
        try:
            export(b"", timeout=timeout, metadata=pairs)
        except grpc.RpcError as error:
            return str(error.code().name)
        return "OK"
    finally:
        channel.close()


def connects(
    target: str, *, secure: bool, timeout: float, root_certificates: bytes | None = None
) -> bool:
    """Whether an HTTP/2 connection to ``target`` (TLS or not, as asked) is made within
    ``timeout`` seconds; nothing is sent over it."""
    channel = _channel(target, secure, root_certificates)
    try:
        return _ready(channel, timeout)
    finally:
        channel.close()


def _channel(target: str, secure: bool, root_certificates: bytes | None) -> Any:
    if not secure:
        return grpc.insecure_channel(target)
    credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
    return grpc.secure_channel(target, credentials)


def _ready(channel: Any, timeout: float) -> bool:
    ready = grpc.channel_ready_future(channel)
    try:
        ready.result(timeout=timeout)
    except grpc.FutureTimeoutError:
        ready.cancel()
        return False
    return True
