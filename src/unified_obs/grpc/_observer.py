"""The ``Observer``: opens a call's span and, when the call ends, closes it with its
duration observation, its log line and the in-flight count."""

from __future__ import annotations

import logging
import time
from typing import Any, Final

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .. import context as fields
from .. import logs
from .._semconv import SCHEMA_URL, exception_attributes, library_version
from ..lifecycle import inflight
from . import _durations
from ._common import OTHER_METHOD, SERVER_ERROR_CODES, STATUS_NAMES, Options, error_type

__all__ = ["Call", "Observer", "bind_call"]

_OK: Final = grpc.StatusCode.OK
_log: Final = logging.getLogger("unified_obs")
_calls_log: Final = logs.get_logger("unified_obs.grpc")


class Observer:
    """Opens a call's span and, when the call ends, closes it with its duration histogram
    observation, its log line and the in-flight count.  One per interceptor."""

    __slots__ = (
        "_children",
        "_duration",
        "_event",
        "_facts",
        "_kind",
        "_server",
        "_tracer",
        "options",
    )

    def __init__(
        self,
        side: str,
        options: Options,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.options = options
        self._tracer = trace.get_tracer(
            "unified_obs.grpc", library_version(), tracer_provider, schema_url=SCHEMA_URL
        )
        self._kind = SpanKind.SERVER if side == "server" else SpanKind.CLIENT
        errors = SERVER_ERROR_CODES if side == "server" else frozenset(STATUS_NAMES) - {_OK}
        # id(code) -> (name, an error for this side?, log level): enum members hash through
        # a Python-level __hash__, and a call looked its code up three times
        self._facts = {
            id(code): (name, code in errors, "error" if code in SERVER_ERROR_CODES else "info")
            for code, name in STATUS_NAMES.items()
        }
        self._duration = _durations.call_duration(side)
        self._server: tuple[str, ...] = ()  # the client's server.address/port labels
        if side == "client":
            port = options.server_port
            self._server = (options.server_address or "", "" if port is None else str(port))
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
        started_ns = time.time_ns()
        name = method if method != OTHER_METHOD else "grpc"  # rpc.system.name for _OTHER
        span = self._tracer.start_span(name, parent, self._kind, attributes, None, started_ns)
        inflight.enter()
        return Call(self, span, method, started_ns)

    def record(
        self,
        call: Call,
        code: grpc.StatusCode,
        exc: BaseException | None,
        aborted: bool,
        details: str | None,
    ) -> None:
        """End ``call``'s span, observe its duration and write its log line."""
        elapsed = time.perf_counter_ns() - call.started
        duration = elapsed / 1e9
        name, failed, level = self._facts.get(id(code)) or ("UNKNOWN", True, "error")
        etype = error_type(code, name, exc, aborted) if failed else None
        span = call.span
        if span.is_recording():
            span.set_attribute("rpc.response.status_code", name)
            if etype is not None:
                span.set_attribute("error.type", etype)
            if exc is not None and not aborted:
                span.add_event("exception", exception_attributes(exc))
            if failed:
                span.set_status(Status(StatusCode.ERROR, details or name))
        span.end(call.started_ns + elapsed)  # the span lasts exactly the observed duration
        self._observe(call.method, name, etype, duration)
        log_calls = self.options.log_calls
        if log_calls is True or (log_calls and code is not _OK):
            self._log(call.method, level, name, etype, elapsed, exc if not aborted else None)

    def _observe(self, method: str, name: str, etype: str | None, duration: float) -> None:
        key = (method, name, etype or "")
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._duration.labels("grpc", *key, *self._server)
        child.observe(duration)

    def _log(
        self,
        method: str,
        level: str,
        name: str,
        etype: str | None,
        elapsed: int,
        exc: BaseException | None,
    ) -> None:
        event: dict[str, Any] = {
            "rpc.method": method,
            "status": name,
            "duration_ms": (elapsed + 500) // 1000 / 1000,  # to the µs; round() costs 5x
        }
        if etype is not None:
            event["error"] = etype
        if exc is not None:
            event["exc_info"] = exc
        getattr(_calls_log, level)(self._event, **event)


class Call:
    """One observed call: its span, method and start time; ``finish`` runs once."""

    __slots__ = ("_observer", "done", "method", "span", "started", "started_ns")

    def __init__(self, observer: Observer, span: trace.Span, method: str, started_ns: int) -> None:
        self._observer = observer
        self.span = span
        self.method = method
        self.done = False
        self.started_ns = started_ns  # wall clock, the span's start time
        self.started = time.perf_counter_ns()  # monotonic, for the duration

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
    shared = _CALL_FIELDS.get(method)
    if shared is None:
        shared = {"rpc.method": method}
        if len(_CALL_FIELDS) < _CALL_FIELDS_LIMIT:
            _CALL_FIELDS[method] = shared
    return fields.bind_shared(shared)


_CALL_FIELDS: Final[dict[str, dict[str, str]]] = {}
"""Method -> its bound fields, shared by every call (never changed once made)."""
_CALL_FIELDS_LIMIT: Final = 4096
