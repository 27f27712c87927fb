"""What every gRPC interceptor shares: RPC semantic conventions, metadata propagation and
the ``Observer`` that opens a call's span and closes it with its metric and log line.

Pure helpers (method names, peer parsing, status classification) are plain functions;
the interceptors in ``server``, ``client`` and the ``aio_*`` modules are thin shells
that only decide *when* a call starts and ends.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.trace import SpanKind, Status, StatusCode

from .. import context as fields
from .. import logs
from ..lifecycle import inflight
from . import _instruments

__all__ = [
    "DEFAULT_EXCLUDED_SERVICES",
    "SERVER_ERROR_CODES",
    "Call",
    "Observer",
    "Options",
    "error_type",
    "extract",
    "full_method",
    "inject",
    "parse_peer",
    "status_name",
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

_OK: Final = grpc.StatusCode.OK
_STATUS_NAMES: Final = {code: code.name for code in grpc.StatusCode}
_log: Final = logging.getLogger("unified_obs")
_calls_log: Final = logs.get_logger("unified_obs.grpc")


@dataclass(frozen=True, slots=True)
class Options:
    """Per-interceptor knobs: which services to skip, whether to log each call, and the
    peer (``server.address``/``server.port``) a client talks to when known."""

    excluded_services: frozenset[str] = DEFAULT_EXCLUDED_SERVICES
    log_calls: bool = True
    server_address: str | None = None
    server_port: int | None = None

    def traced(self, method: str) -> bool:
        """Whether ``method`` (``pkg.Service/Method``) is observed at all."""
        return method.partition("/")[0] not in self.excluded_services


def make_options(
    excluded_services: Iterable[str] | None, log_calls: bool, target: str | None = None
) -> Options:
    """Options from the public factories' keyword arguments."""
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
        found = parse_target(rest) if scheme in ("ipv4", "ipv6") else (rest or peer, None)
        if len(_PEERS) >= 4096:
            _PEERS.clear()
        _PEERS[peer] = found
    return found


_PEERS: dict[str, tuple[str | None, int | None]] = {}


def parse_target(target: str) -> tuple[str | None, int | None]:
    """``host:port`` / ``[::1]:port`` / ``host`` -> (address, port or None)."""
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or (host.count(":") and not host.startswith("[")):
        return target or None, None
    return host.strip("[]") or None, int(port)


def status_name(code: grpc.StatusCode | None) -> str:
    """The semconv ``rpc.status_code`` string (``OK``, ``NOT_FOUND`` ...)."""
    return _STATUS_NAMES.get(code, "UNKNOWN") if code is not None else "OK"


def error_type(code: grpc.StatusCode, exc: BaseException | None, aborted: bool) -> str | None:
    """``error.type``: the exception's class for a crash, else the status name; None if OK."""
    if exc is not None and not aborted:
        cls = type(exc)
        module = cls.__module__
        return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
    return None if code is _OK else _STATUS_NAMES.get(code, "UNKNOWN")


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
        textmap = propagate.get_global_textmap()
        keys = _PROPAGATED.get(textmap)
        if keys is None:
            keys = _PROPAGATED[textmap] = frozenset(textmap.fields)
        if not any(item[0] in keys for item in metadata):
            return None
        return propagate.extract(metadata, getter=_GETTER)
    except Exception:
        _log.debug("unified_obs: ignoring unreadable trace context metadata", exc_info=True)
        return None


_PROPAGATED: weakref.WeakKeyDictionary[Any, frozenset[str]] = weakref.WeakKeyDictionary()


def inject(metadata: Sequence[Any] | None, span: trace.Span) -> list[tuple[str, Any]]:
    """``metadata`` plus the trace context of ``span`` (W3C ``traceparent`` ...)."""
    out: list[tuple[str, Any]] = list(metadata or ())
    try:
        propagate.inject(out, context=trace.set_span_in_context(span), setter=_SETTER)
    except Exception:
        _log.debug("unified_obs: could not inject trace context", exc_info=True)
    return out


_LEVELS: Final = {code: "warning" for code in grpc.StatusCode} | {_OK: "info"}
_LEVELS.update({code: "error" for code in SERVER_ERROR_CODES})


class Observer:
    """Opens a call's span and, when the call ends, closes it with its duration histogram
    observation, its log line and the in-flight count.  One per interceptor."""

    __slots__ = ("_children", "_duration", "_errors", "_event", "_kind", "_tracer", "options")

    def __init__(
        self,
        side: str,
        options: Options,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.options = options
        self._tracer = trace.get_tracer("unified_obs.grpc", tracer_provider=tracer_provider)
        self._kind = SpanKind.SERVER if side == "server" else SpanKind.CLIENT
        server = side == "server"
        self._errors = SERVER_ERROR_CODES if server else frozenset(_STATUS_NAMES) - {_OK}
        self._duration = _instruments.call_duration(side)
        self._children: dict[tuple[str, str, str], Any] = {}
        self._event = f"grpc.{side}.call"

    def start(
        self,
        method: str,
        parent: otel_context.Context | None,
        peer: tuple[str | None, int | None] = (None, None),
    ) -> Call:
        """Start the span of ``method`` under ``parent`` and count the call in flight."""
        attributes: dict[str, Any] = {"rpc.system.name": "grpc", "rpc.method": method}
        address, port = peer
        options = self.options
        if self._kind is SpanKind.SERVER:
            if address is not None:
                attributes["network.peer.address"] = address
            if port is not None:
                attributes["network.peer.port"] = port
        elif options.server_address is not None:
            attributes["server.address"] = options.server_address
            if options.server_port is not None:
                attributes["server.port"] = options.server_port
        span = self._tracer.start_span(method, parent, self._kind, attributes)
        inflight.enter()
        return Call(self, span, method)

    def record(
        self,
        call: Call,
        code: grpc.StatusCode,
        exc: BaseException | None,
        aborted: bool,
        details: str | None,
    ) -> None:
        """End ``call``'s span, observe its duration and write its log line."""
        duration = time.perf_counter() - call.started
        name = _STATUS_NAMES.get(code, "UNKNOWN")
        etype = error_type(code, exc, aborted)
        span = call.span
        if span.is_recording():
            span.set_attribute("rpc.status_code", name)
            if etype is not None:
                span.set_attribute("error.type", etype)
            if exc is not None and not aborted:
                span.record_exception(exc)
            if code in self._errors:
                span.set_status(Status(StatusCode.ERROR, details or name))
        span.end()
        self._observe(call.method, name, etype, duration)
        if self.options.log_calls:
            self._log(call.method, code, name, etype, duration, exc if not aborted else None)

    def _observe(self, method: str, name: str, etype: str | None, duration: float) -> None:
        key = (method, name, etype or "")
        child = self._children.get(key)
        if child is None:
            if self._duration is None:
                return
            child = self._children[key] = self._duration.labels("grpc", *key)
        child.observe(duration)

    def _log(
        self,
        method: str,
        code: grpc.StatusCode,
        name: str,
        etype: str | None,
        duration: float,
        exc: BaseException | None,
    ) -> None:
        event: dict[str, Any] = {
            "rpc.method": method,
            "rpc.status_code": name,
            "duration_ms": round(duration * 1000.0, 3),
        }
        if etype is not None:
            event["error.type"] = etype
        if exc is not None:
            event["exc_info"] = exc
        getattr(_calls_log, _LEVELS.get(code, "error"))(self._event, **event)


class Call:
    """One observed call: its span, method and start time; ``finish`` runs once."""

    __slots__ = ("_observer", "done", "method", "span", "started")

    def __init__(self, observer: Observer, span: trace.Span, method: str) -> None:
        self._observer = observer
        self.span = span
        self.method = method
        self.done = False
        self.started = time.perf_counter()

    def finish(
        self,
        code: grpc.StatusCode,
        exc: BaseException | None = None,
        *,
        aborted: bool = False,
        details: str | None = None,
        attach: bool = False,
    ) -> None:
        """Record the outcome (first call only); never raises."""
        if self.done:
            return
        self.done = True
        token = otel_context.attach(trace.set_span_in_context(self.span)) if attach else None
        try:
            self._observer.record(self, code, exc, aborted, details)
        except Exception:
            _log.warning("unified_obs: recording a gRPC call failed", exc_info=True)
        finally:
            inflight.exit()
            if token is not None:
                otel_context.detach(token)


def bind_call(method: str) -> Any:
    """Bind the request-scoped log fields of a server call; returns the reset token."""
    return fields.bind(**{"rpc.method": method})
