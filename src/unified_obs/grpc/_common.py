"""What every gRPC interceptor shares: options, RPC semantic conventions (method names,
peer parsing, status classification) and trace-context propagation through metadata.

The interceptors in ``server``, ``client`` and the ``aio_*`` modules are thin shells that
only decide *when* a call starts and ends; ``_observer`` records it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter, Setter

from .._compat.opentelemetry import SUPPRESS_INSTRUMENTATION_KEY
from .._http import error_type as exception_type
from .._http.w3c import NAMES as W3C_NAMES
from .._http.w3c import carrier as w3c_carrier
from .._http.w3c import plain as w3c_plain
from ..errors import ConfigError

__all__ = [
    "DEFAULT_EXCLUDED_SERVICES",
    "OTHER_METHOD",
    "SERVER_ERROR_CODES",
    "STATUS_NAMES",
    "LogCalls",
    "Options",
    "error_type",
    "extract",
    "full_method",
    "inject",
    "make_options",
    "parse_peer",
    "parse_target",
]

DEFAULT_EXCLUDED_SERVICES: Final = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    }
)
"""Services left out of traces, metrics and call logs unless ``excluded_services`` says so."""

SERVER_ERROR_CODES: Final = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
"""Codes that mark a SERVER span as Error (semconv); a CLIENT span errs on any non-OK."""

OTHER_METHOD: Final = "_OTHER"
"""``rpc.method`` of a call to a method the server does not know (its name, chosen by the
client, goes to ``rpc.method_original`` on the span only)."""

_OK: Final = grpc.StatusCode.OK
_DEFAULT_PORT: Final = 443
"""The port gRPC connects to for a name given without one (gRPC's ``doc/naming.md``)."""
LogCalls = bool | Literal["errors"]
"""``log_calls``: every call, none, or only calls that did not end OK."""
STATUS_NAMES: Final = {code: code.name for code in grpc.StatusCode}
_log: Final = logging.getLogger("unified_obs")


@dataclass(frozen=True, slots=True)
class Options:
    """Per-interceptor knobs: which services to skip, whether to log each call, and the
    peer (``server.address``/``server.port``) a client talks to when known."""

    excluded_services: frozenset[str] = DEFAULT_EXCLUDED_SERVICES
    log_calls: LogCalls = True
    server_address: str | None = None
    server_port: int | None = None

    def traced(self, method: str) -> bool:
        """Whether ``method`` (``pkg.Service/Method``) is observed at all."""
        return method.partition("/")[0] not in self.excluded_services

    def client_traced(self, method: str) -> bool:
        """Like :meth:`traced`, and not while instrumentation is suppressed (an exporter's
        own calls, or code inside ``suppress_instrumentation``)."""
        return self.traced(method) and not otel_context.get_value(SUPPRESS_INSTRUMENTATION_KEY)


def make_options(
    excluded_services: Iterable[str] | None, log_calls: LogCalls, target: str | None = None
) -> Options:
    """Options from the public factories' keyword arguments (``ConfigError`` if invalid)."""
    if log_calls not in (True, False, "errors") or not isinstance(log_calls, (bool, str)):
        raise ConfigError("log_calls", log_calls, 'True, False or "errors"')
    if isinstance(excluded_services, str):
        raise ConfigError("excluded_services", excluded_services, "a list of service names")
    excluded = DEFAULT_EXCLUDED_SERVICES if excluded_services is None else excluded_services
    address, port = parse_target(target) if target else (None, None)
    return Options(frozenset(excluded), log_calls, address, port)


def full_method(raw: str | bytes) -> str:
    """``/pkg.Service/Method`` (as gRPC names it) -> ``pkg.Service/Method``."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return text[1:] if text.startswith("/") else text


def parse_peer(peer: str | None) -> tuple[str | None, int | None]:
    """``ipv4:10.0.0.1:5000`` / ``ipv6:[::1]:5000`` / ``unix:/path`` -> (address, port)."""
    if not peer:
        return None, None
    found = _PEERS.get(peer)
    if found is None:
        scheme, _, rest = peer.partition(":")
        found = _host_port(rest, None) if scheme in ("ipv4", "ipv6") else (rest or peer, None)
        if len(_PEERS) >= 4096:
            _PEERS.clear()
        _PEERS[peer] = found
    return found


_PEERS: dict[str, tuple[str | None, int | None]] = {}


def parse_target(target: str) -> tuple[str | None, int | None]:
    """A channel target, in gRPC's naming, -> (``server.address``, ``server.port``).

    ``host:port``, ``[::1]:port``, ``dns:[//dns-server/]host[:port]`` (port 443 when
    not given, as gRPC connects), ``ipv4:``/``ipv6:`` address lists (the first one), and
    ``unix:path``, ``unix:///absolute/path``, ``unix-abstract:name`` (no port).
    """
    scheme, sep, rest = target.partition(":")
    if sep and scheme in ("unix", "unix-abstract"):
        path = rest[2:] if rest.startswith("//") else rest
        return path or None, None
    if sep and scheme in ("ipv4", "ipv6"):
        return _host_port(rest.split(",")[0], None)
    if sep and scheme == "dns":
        if rest.startswith("//"):  # dns://dns-server/host:port: skip the DNS server
            rest = rest[2:].partition("/")[2]
        return _host_port(rest, _DEFAULT_PORT)
    return _host_port(target, _DEFAULT_PORT)


def _host_port(text: str, default: int | None) -> tuple[str | None, int | None]:
    """``host:port`` / ``[v6]:port`` / ``host`` / ``v6`` -> (host, port or ``default``)."""
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and (host.startswith("[") or ":" not in host):
        return host.strip("[]") or None, int(port)
    return text.strip("[]") or None, default


def error_type(
    code: grpc.StatusCode, name: str, exc: BaseException | None, aborted: bool
) -> str | None:
    """``error.type`` of a failed call: the exception's class for a crash, else the
    status ``name``; None if OK.  (Whether a status failed depends on the side: the
    caller asks only for calls that did.)"""
    if exc is not None and not aborted:
        return exception_type(exc)
    return None if code is _OK else name


class _MetadataGetter(Getter[Sequence[Any]]):
    """Reads text values from gRPC metadata (a sequence of ``(key, value)`` pairs)."""

    def get(self, carrier: Sequence[Any], key: str) -> list[str] | None:
        found = [v for k, v in carrier if k == key and isinstance(v, str)]
        return found or None

    def keys(self, carrier: Sequence[Any]) -> list[str]:
        return [k for k, _ in carrier]


class _MetadataSetter(Setter[list[tuple[str, str]]]):
    """Appends ``(key, value)`` pairs to outgoing metadata."""

    def set(self, carrier: list[tuple[str, str]], key: str, value: str) -> None:
        carrier.append((key, value))


_GETTER: Final = _MetadataGetter()
_SETTER: Final = _MetadataSetter()


def extract(metadata: Sequence[Any] | None) -> otel_context.Context | None:
    """The remote parent carried in ``metadata``; malformed values are ignored, never raised.

    Metadata without any of the propagators' keys is skipped without parsing.
    """
    if not metadata:
        return None
    try:
        keys = _propagated_keys(propagate.get_global_textmap())
        for item in metadata:  # a loop, not any(<generator>): this runs on every call
            if item[0] in keys:
                return propagate.extract(_w3c_read(metadata), getter=_GETTER)
        return None
    except Exception:
        _log.debug("unified_obs: ignoring unreadable trace context metadata", exc_info=True)
        return None


def _w3c_read(metadata: Sequence[Any]) -> Sequence[Any]:
    """``metadata`` with its W3C lines read per the specifications (repeated
    ``traceparent`` invalid, ``tracestate`` and ``baggage`` combined and bounded: see
    ``_http.w3c``); the other keys, for other propagators, as they came."""
    lines = [(k, v) for k, v in metadata if k in W3C_NAMES]
    if w3c_plain(lines):
        return metadata  # the common case, read as it is
    others = [(k, v) for k, v in metadata if k not in W3C_NAMES]
    texts = [(k, v) for k, v in lines if isinstance(v, str)]
    return others + list((w3c_carrier(texts) or {}).items())


_last_keys: tuple[object, frozenset[str]] = (None, frozenset())
"""The last propagator seen and the metadata keys it reads (it rarely changes)."""


def _propagated_keys(textmap: Any) -> frozenset[str]:
    """The metadata keys ``textmap`` reads (computed again only when it changes)."""
    global _last_keys
    cached, keys = _last_keys
    if textmap is not cached:
        keys = frozenset(textmap.fields)
        _last_keys = (textmap, keys)  # holding it keeps its identity from being reused
    return keys


def inject(metadata: Sequence[Any] | None, span: trace.Span) -> list[tuple[str, Any]]:
    """``metadata`` plus the trace context of ``span`` (W3C ``traceparent`` ...)."""
    out: list[tuple[str, Any]] = list(metadata or ())
    try:
        propagate.inject(out, context=trace.set_span_in_context(span), setter=_SETTER)
    except Exception:
        _log.debug("unified_obs: could not inject trace context", exc_info=True)
    return out
