"""Can each OTLP endpoint be reached?  One short request per signal, as the exporter makes it.

OTLP/HTTP: an empty export request (a valid protobuf message with no data) is POSTed to the
signal's endpoint with its headers, through ``requests`` as the exporter does; the answer
is classified by status code or by the kind of failure (refused, timed out, TLS spoken to
a plain server or the reverse).  OTLP/gRPC: the gRPC handshake and an empty export
(``_reach_grpc``).

Only the kind of a failure is reported, never the library's message: those messages
repeat the URL, query string included.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Final
from urllib.parse import urlsplit

import requests

from ..config import OtlpTarget, Settings, Signal, mask_url
from ._checks import Check
from ._hints import CREDENTIALS, REFUSED, UNKNOWN_HOST
from ._reach_grpc import reach_grpc

__all__ = ["reachability"]

_SIGNALS: Final[tuple[Signal, ...]] = ("traces", "metrics", "logs")
_CLOSED: Final = "the connection was closed without an HTTP answer"
_STATUS_HINTS: Final = {
    400: "the receiver refused the request: a protocol mismatch (OTEL_EXPORTER_OTLP_PROTOCOL)?",
    401: CREDENTIALS,
    403: CREDENTIALS,
    404: "no OTLP receiver at this path: OTEL_EXPORTER_OTLP_ENDPOINT is a base URL "
    "(/v1/<signal> is added), OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT a full one",
    405: "not an OTLP/HTTP receiver at this path",
    415: "the receiver wants another encoding: a protocol mismatch (http/protobuf vs grpc)?",
}


def reachability(settings: Settings, timeout: float, environ: Mapping[str, str]) -> list[Check]:
    """One check per signal whose exporter is OTLP, each within ``timeout`` seconds, all at
    once (so a silent collector costs one timeout, not three); ``environ``: the exporters'
    own variables, such as ``OTEL_EXPORTER_OTLP_INSECURE``."""
    signals = [signal for signal in _SIGNALS if settings.exporter(signal) == "otlp"]
    if not signals:
        return []
    with ThreadPoolExecutor(len(signals), thread_name_prefix="unified-obs-doctor") as pool:
        return list(
            pool.map(
                lambda signal: _reach(signal, settings.otlp(signal), timeout, environ), signals
            )
        )


def _reach(signal: Signal, target: OtlpTarget, timeout: float, environ: Mapping[str, str]) -> Check:
    budget = min(timeout, target.timeout)
    if target.protocol == "grpc":
        return reach_grpc(signal, target, budget, environ)
    shown = f"{target.protocol} {mask_url(target.endpoint)}"
    return _post(f"otlp_{signal}", shown, target, budget)


def _post(name: str, shown: str, target: OtlpTarget, timeout: float) -> Check:
    headers = {**target.headers, "Content-Type": "application/x-protobuf"}
    start = time.monotonic()
    try:
        response = requests.post(
            target.endpoint, data=b"", headers=headers, timeout=timeout, allow_redirects=False
        )
    except requests.exceptions.SSLError:
        return Check(name, "fail", f"{shown}: TLS handshake failed", _tls_hint(target.endpoint))
    except requests.exceptions.Timeout:
        return Check(
            name,
            "fail",
            f"{shown}: no answer within {timeout:g}s",
            "a firewall, a wrong port, or a server that accepts and never answers",
        )
    except requests.exceptions.ConnectionError as exc:
        failure = _connection_failure(exc)
        hint = _wrong_speaker(target) if failure is _CLOSED else None
        return Check(name, "fail", f"{shown}: {failure}", hint)
    except requests.exceptions.RequestException:
        return Check(name, "fail", f"{shown}: the request could not be made")
    elapsed = (time.monotonic() - start) * 1000
    status = response.status_code
    response.close()
    if 200 <= status < 300:
        return Check(name, "ok", f"{shown}: HTTP {status} in {elapsed:.0f} ms")
    hint = _STATUS_HINTS.get(status, "the receiver answered with an error")
    return Check(name, "fail", f"{shown}: HTTP {status}", hint)


def _connection_failure(exc: requests.exceptions.ConnectionError) -> str:
    """The kind of failure, from the exception chain's types alone."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return REFUSED
        if isinstance(seen, socket.gaierror):
            return UNKNOWN_HOST
        seen = seen.__cause__ or seen.__context__ or _first_arg(seen)
    return _CLOSED


def _first_arg(exc: BaseException) -> BaseException | None:
    """urllib3 wraps the cause in its ``args`` rather than ``__cause__``."""
    inner = exc.args[0] if exc.args else None
    if isinstance(inner, BaseException) and inner is not exc:
        return inner
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, BaseException) and reason is not exc else None


def _tls_hint(endpoint: str) -> str:
    if endpoint.startswith("https://"):
        return "the endpoint may speak plain HTTP: try http://, or check its certificate"
    return "check the collector's certificate"


def _wrong_speaker(target: OtlpTarget) -> str | None:
    port = urlsplit(target.endpoint).port
    if port == 4317:
        return "4317 is the OTLP/gRPC port: set OTEL_EXPORTER_OTLP_PROTOCOL=grpc, or use 4318"
    if target.endpoint.startswith("http://"):
        return "if the collector speaks TLS there, use https://"
    return None
