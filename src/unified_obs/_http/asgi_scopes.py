"""The ASGI middleware's non-HTTP scopes: websocket sessions and lifespan.

A websocket connection gets one span (handshake and session), not one per message:
message counts and the close code are attributes, ``websocket.server.connection.duration``
and ``websocket.server.active_connections`` its own metrics, and one access log line is
written when it ends.  Lifespan passes through; the health registry learns when startup
completed and the library's shutdown sequence runs when the app has shut down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import MutableMapping
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .. import _http, context, health, lifecycle, metrics
from .._semconv import exception_attributes
from . import w3c
from .asgi_types import ASGIApp, Message, Receive, Send
from .exchange import Recorder

_NORMAL_CLOSE: Final = 1000


def _metrics() -> tuple[Any, Any]:
    """The session instruments (get-or-create: cheap, and right after ``testing.reset()``)."""
    duration = metrics.histogram(
        "websocket.server.connection.duration",
        "Duration of WebSocket connections.",
        labels=("http.route", "websocket.close.code"),
        unit="s",
        buckets=(0.1, 1, 10, 60, 300, 900, 3600, 14400),
    )
    active = metrics.up_down_counter(
        "websocket.server.active_connections", "Open WebSocket connections.", unit="{connection}"
    )
    return duration, active


class _Session:
    """Counts messages and remembers the close code of one connection."""

    __slots__ = ("accepted", "close_code", "received", "sent", "status")

    def __init__(self) -> None:
        self.received = self.sent = 0
        self.close_code: int | None = None
        self.accepted = False
        self.status = 0

    def wrap(self, receive: Receive, send: Send) -> tuple[Receive, Send]:
        async def session_receive() -> Message:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                self.received += 1
            elif kind == "websocket.disconnect":
                self.close_code = message.get("code", _NORMAL_CLOSE)
            return message

        async def session_send(message: Message) -> None:
            kind = message["type"]
            if kind == "websocket.send":
                self.sent += 1
            elif kind == "websocket.accept":
                self.accepted = True
            elif kind == "websocket.close" and self.close_code is None:
                self.close_code = message.get("code", _NORMAL_CLOSE)
            elif kind == "websocket.http.response.start":
                self.status = message["status"]
            await send(message)

        return session_receive, session_send


async def websocket_session(
    app: ASGIApp,
    recorder: Recorder,
    scope: MutableMapping[str, Any],
    receive: Receive,
    send: Send,
) -> None:
    """Run one WebSocket connection of ``app`` inside a connection span."""
    path = scope["path"]
    if path in recorder.special or (
        recorder.excluded_prefixes and path.startswith(recorder.excluded_prefixes)
    ):
        await app(scope, receive, send)
        return
    session = _Session()
    root_path = scope.get("root_path", "")
    span = recorder.tracer.start_span(
        "WEBSOCKET", _parent(scope, recorder), SpanKind.SERVER, _attributes(scope)
    )
    active = _metrics()[1]
    token = otel_context.attach(trace.set_span_in_context(span))
    fields = context.bind(request_id=_http.new_request_id())
    start = time.perf_counter()
    active.inc()
    error: BaseException | None = None
    try:
        await app(scope, *session.wrap(receive, send))
    except BaseException as exc:
        error = exc
        raise
    finally:
        active.dec()
        elapsed = time.perf_counter() - start
        _finish(recorder, scope, root_path, span, session, error, elapsed)
        context.reset(fields)
        otel_context.detach(token)


def _parent(scope: MutableMapping[str, Any], recorder: Recorder) -> Any:
    """The remote parent (and baggage) the handshake's W3C headers carry, read per the
    specifications (``w3c.carrier``: repeated lines, list members, limits)."""
    lines = [
        (name.decode("latin-1").lower(), value.decode("latin-1"))
        for name, value in scope.get("headers", ())
        if name.lower() in _W3C_NAMES
    ]
    carrier = w3c.carrier(lines)
    return None if carrier is None else recorder.extract(carrier)


_W3C_NAMES: Final = frozenset(name.encode() for name in w3c.NAMES)


def _attributes(scope: MutableMapping[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "url.scheme": scope.get("scheme", "ws"),
        "url.path": scope["path"],
        "network.protocol.name": "websocket",
    }
    client = scope.get("client")
    if client:
        attributes["client.address"] = client[0]
    return attributes


def _finish(
    recorder: Recorder,
    scope: MutableMapping[str, Any],
    root_path: str,
    span: Any,
    session: _Session,
    error: BaseException | None,
    elapsed: float,
) -> None:
    try:
        route = scope.get(_http.ROUTE_KEY) or _http.starlette_route(scope, root_path)
        code = session.close_code
        duration, _ = _metrics()
        label = route or recorder.unmatched
        duration.labels(label, str(code) if code is not None else "").observe(elapsed)
        _end_span(span, route, session, error)
        if recorder.access_log:
            recorder.log.info(
                "websocket.session",
                path=scope["path"],
                route=route,
                close_code=code,
                accepted=session.accepted,
                messages_received=session.received,
                messages_sent=session.sent,
                duration_ms=round(elapsed * 1e3, 3),
                error=_http.error_type(error) if error is not None else None,
            )
    except Exception:
        _http.internal_error("websocket finish")


def _end_span(span: Any, route: str | None, session: _Session, error: BaseException | None) -> None:
    if span.is_recording():
        attributes: dict[str, Any] = {
            "websocket.messages.received": session.received,
            "websocket.messages.sent": session.sent,
        }
        if route:
            attributes["http.route"] = route
            span.update_name(f"WEBSOCKET {route}")
        if session.close_code is not None:
            attributes["websocket.close.code"] = session.close_code
        if session.status:
            attributes["http.response.status_code"] = session.status
        if error is not None:
            attributes["error.type"] = _http.error_type(error)
            span.set_status(Status(StatusCode.ERROR))
            if isinstance(error, Exception):
                span.add_event("exception", exception_attributes(error))
        span.set_attributes(attributes)
    span.end()


async def lifespan(
    app: ASGIApp, scope: MutableMapping[str, Any], receive: Receive, send: Send
) -> None:
    """Pass lifespan through; startup complete -> health ``mark_started()``; shutdown
    complete -> the library's shutdown sequence, in a thread, before the server is told.
    The server's event loop gets its lag and tasks measured from here on."""
    metrics.watch_event_loop()
    seen: set[str] = set()

    async def lifespan_send(message: Message) -> None:
        kind = message["type"]
        seen.add(kind)
        if kind == "lifespan.startup.complete":
            _mark_started()
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            await _run_shutdown_sequence()
        await send(message)

    try:
        await app(scope, receive, lifespan_send)
    finally:
        if not seen & {"lifespan.startup.complete", "lifespan.startup.failed"}:
            _mark_started()  # the app takes no part in lifespan: it is ready when served


def _mark_started() -> None:
    try:
        health.default_registry().mark_started()
    except Exception:
        _http.internal_error("lifespan startup")


async def _run_shutdown_sequence() -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio (trio): run it here
        loop = None
    try:
        if loop is None:
            lifecycle.run_shutdown_sequence()
        else:
            await loop.run_in_executor(None, lifecycle.run_shutdown_sequence)
    except Exception:
        _http.internal_error("lifespan shutdown")
