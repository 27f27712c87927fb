"""Can an OTLP/gRPC endpoint be reached?  A TCP connection, then the gRPC handshake and an
empty export as the exporter would make them (``grpc._otlp_probe``), with TLS or without
as the exporter would choose.

When no handshake is made, the other choice is tried: if that one connects, the hint says
which way TLS and plaintext differ.  Without grpcio (the ``[grpc]`` extra) only the TCP
connection is checked, and the check says so.  Only status codes and kinds of failure
are reported, never a server's details or a library's message.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

from ..config import OtlpTarget, Signal, mask_url
from ._checks import Check
from ._hints import CREDENTIALS, REFUSED, UNKNOWN_HOST

__all__ = ["reach_grpc", "uses_tls"]

_STATUS_HINTS: Final = {
    "UNIMPLEMENTED": "a gRPC server, but no OTLP receiver of this signal: check host and port",
    "UNAUTHENTICATED": CREDENTIALS,
    "PERMISSION_DENIED": CREDENTIALS,
    "DEADLINE_EXCEEDED": "the collector did not answer in time: overloaded, or a proxy?",
    "INTERNAL": "failed in gRPC or in the collector: a header value gRPC cannot send "
    "(OTEL_EXPORTER_OTLP_HEADERS)?",
}
_HEADERS_HINT: Final = "gRPC metadata must be ASCII: check OTEL_EXPORTER_OTLP_HEADERS"
_HTTP_PORT_HINT: Final = (
    "4318 is the OTLP/HTTP port: use OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf or 4317"
)


def uses_tls(target: OtlpTarget, signal: Signal, environ: Mapping[str, str]) -> bool:
    """Whether the OTLP/gRPC exporter speaks TLS to ``target``: always for ``https://``,
    else as ``OTEL_EXPORTER_OTLP_[<SIGNAL>_]INSECURE`` says, else for any scheme but
    ``http://``."""
    scheme = urlsplit(target.endpoint).scheme
    if scheme == "https":
        return True
    insecure = environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_INSECURE")
    insecure = environ.get("OTEL_EXPORTER_OTLP_INSECURE") if insecure is None else insecure
    if insecure is not None:
        return insecure.strip().lower() != "true"
    return scheme != "http"


def reach_grpc(
    signal: Signal, target: OtlpTarget, timeout: float, environ: Mapping[str, str]
) -> Check:
    """One check of ``signal`` 's OTLP/gRPC endpoint within about ``timeout`` seconds
    (twice that when the handshake fails and the other choice of TLS is tried)."""
    name = f"otlp_{signal}"
    secure = uses_tls(target, signal, environ)
    shown = f"grpc ({'TLS' if secure else 'plaintext'}) {mask_url(target.endpoint)}"
    parts = urlsplit(target.endpoint)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 4317)
    refused = _tcp_failure(host, port, timeout)
    if refused is not None:
        return Check(name, "fail", f"{shown}: {refused}")
    try:
        from ..grpc import _otlp_probe
    except ImportError:
        hint = "grpcio is not installed (pip install 'unified-obs[grpc]'): TCP only"
        return Check(name, "warn" if port == 4318 else "ok", f"{shown}: TCP connection made", hint)
    certificates = _root_certificates(signal, environ)
    start = time.monotonic()
    try:
        code = _otlp_probe.export_empty(
            f"{host}:{port}",
            signal,
            secure=secure,
            metadata=target.headers,
            timeout=timeout,
            root_certificates=certificates,
        )
    except Exception:  # grpcio refused the call itself (a header it cannot send)
        return Check(name, "fail", f"{shown}: the request could not be made", _HEADERS_HINT)
    elapsed = (time.monotonic() - start) * 1000
    if code == "OK":
        return Check(name, "ok", f"{shown}: gRPC handshake and empty export in {elapsed:.0f} ms")
    if code != _otlp_probe.NOT_CONNECTED:
        hint = _STATUS_HINTS.get(code, "the collector answered with an error")
        return Check(name, "fail", f"{shown}: gRPC status {code}", hint)
    other = _otlp_probe.connects(
        f"{host}:{port}", secure=not secure, timeout=timeout, root_certificates=certificates
    )
    hint = _handshake_hint(secure, other, parts.scheme, port)
    return Check(name, "fail", f"{shown}: no gRPC handshake within {timeout:g}s", hint)


def _handshake_hint(secure: bool, other_connects: bool, scheme: str, port: int) -> str:
    """What to change when no handshake was made, given whether the other choice of TLS
    made one (``https://`` always means TLS; ``OTEL_EXPORTER_OTLP_INSECURE`` decides for
    other schemes)."""
    if other_connects and secure:
        change = "an http:// endpoint" if scheme == "https" else "OTEL_EXPORTER_OTLP_INSECURE=true"
        return f"the collector speaks plaintext gRPC: use {change}, or enable TLS on the collector"
    if other_connects:
        return "the collector speaks TLS: use an https:// endpoint"
    if port == 4318:
        return _HTTP_PORT_HINT
    if secure:
        return (
            "not a gRPC server, or its certificate is not trusted (OTEL_EXPORTER_OTLP_CERTIFICATE)"
        )
    return "not a gRPC server (an HTTP/1 server, or a proxy in between?)"


def _tcp_failure(host: str, port: int, timeout: float) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except TimeoutError:
        return f"no connection within {timeout:g}s"
    except ConnectionRefusedError:
        return REFUSED
    except socket.gaierror:
        return UNKNOWN_HOST
    except OSError:
        return "the connection failed"


def _root_certificates(signal: Signal, environ: Mapping[str, str]) -> bytes | None:
    """The CA bundle the exporter would trust (``OTEL_EXPORTER_OTLP_[<SIGNAL>_]CERTIFICATE``),
    ``None`` for the system's roots or when the file cannot be read."""
    path = environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_CERTIFICATE") or environ.get(
        "OTEL_EXPORTER_OTLP_CERTIFICATE"
    )
    if not path:
        return None
    try:
        with open(path, "rb") as bundle:
            return bundle.read()
    except OSError:
        return None
