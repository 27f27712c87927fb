"""Pure ASGI middleware: one SERVER span, RED metrics and one access log line per request.

    from unified_obs.asgi import ObservabilityMiddleware
    app = ObservabilityMiddleware(app)              # any ASGI app: FastAPI, Starlette, ...

No per-request state lives on the middleware: each request gets its own small
exchange object whose bound methods wrap ``send`` and ``receive``.  ``websocket``
scopes get a connection span; ``lifespan`` passes through and tells the health
registry when startup completed and runs the shutdown sequence when it ends; any
other scope type passes through untouched.  The middleware also answers ``/metrics``
and the probe paths, which are kept out of traces, metrics and access logs.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any, Final

from . import _http, context, endpoints, health, lifecycle, metrics
from ._compat import fastapi as fastapi_compat
from ._http import HttpOptions, internal_error, origin, w3c
from ._http.asgi_scopes import lifespan, websocket_session
from ._http.asgi_types import ASGIApp, Message, Receive, Scope, Send
from ._http.exchange import Exchange, Recorder, trace_headers
from .resilience import faults
from .resilience._fault_http import faulty_asgi

__all__ = [
    "ASGIApp",
    "HttpOptions",
    "Message",
    "ObservabilityMiddleware",
    "Receive",
    "Scope",
    "Send",
]


_GET_HEAD: Final = frozenset(("GET", "HEAD"))
_FAULTS: Final = faults.injector()  # one object for the process: its plan says if armed


class ObservabilityMiddleware:
    """Instrument any ASGI app; ``options`` / keywords are :class:`HttpOptions` fields."""

    def __init__(self, app: ASGIApp, options: HttpOptions | None = None, /, **changes: Any):
        self.app = app
        self.options = HttpOptions.build(options, changes)
        self._recorder = Recorder(self.options, "unified_obs.asgi")
        self._special = self._recorder.special
        self._prefixes = self._recorder.excluded_prefixes
        header = self.options.request_id_header
        self._id_header = header.lower().encode("latin-1") if header else None
        # FastAPI's own telemetry would make a second server span: it adopts ours instead
        self._fastapi = fastapi_compat.adopter(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch on the scope type; ``http`` requests are instrumented."""
        if scope["type"] != "http":
            await self._other(scope, receive, send)
            return
        path = scope["path"]
        special = self._special.get(path)
        if special is not None or (self._prefixes and path.startswith(self._prefixes)):
            await self._special_request(special, scope, receive, send)
            return
        try:
            exchange = _HttpExchange(self, scope, send)
        except Exception:  # a scope we cannot read: serve it uninstrumented, never fail it
            internal_error("asgi request start")
            await self.app(scope, receive, send)
            return
        app = self.app
        if _FAULTS.plan.armed:  # fault injection, only in a process armed for it
            app = faulty_asgi(app, exchange.mark_fault)
        if self._fastapi is None:
            await exchange.run(app, receive)
        else:
            await self._run_fastapi(exchange, scope, receive, app)

    async def _run_fastapi(
        self, exchange: _HttpExchange, scope: Scope, receive: Receive, app: ASGIApp
    ) -> None:
        """Run a FastAPI request with FastAPI's telemetry adopting our span (no second one)."""
        assert self._fastapi is not None
        try:
            name = _http.span_name(exchange.method, None)
            exchange.context = self._fastapi(scope, exchange.span, name, exchange.context)
        except Exception:  # FastAPI then makes its own span: never fail the request
            internal_error("fastapi telemetry")
        try:
            await exchange.run(app, receive)
        finally:
            fastapi_compat.release(scope)

    async def _other(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            if self._fastapi is not None:
                fastapi_compat.step_aside(scope)  # our connection span is the only one
            await websocket_session(self.app, self._recorder, scope, receive, send)
        elif kind == "lifespan":
            await lifespan(self.app, scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _special_request(
        self, special: str | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        endpoint: ASGIApp | None = None
        if special == "metrics":
            endpoint = self._metrics
        elif special is not None and special != _http.EXCLUDED:
            endpoint = self._probe
        if endpoint is None:
            if self._fastapi is not None:
                fastapi_compat.step_aside(scope)  # excluded: no span or metric from FastAPI
            await _suppressed(self.app, scope, receive, send)
        elif self.options.instrument_endpoints:
            await _HttpExchange(self, scope, send, route=scope["path"]).run(endpoint, receive)
        else:
            await endpoint(scope, receive, send)

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in _GET_HEAD:
            await _respond(send, *_http.not_allowed())
            return
        headers = _headers(scope)
        try:
            status, out, body = metrics.render(
                headers.get(b"accept"), headers.get(b"accept-encoding")
            )
        except Exception:
            status, out, body = _http.unavailable("metrics endpoint")
        await _respond(send, status, out, b"" if scope["method"] == "HEAD" else body)

    async def _probe(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in _GET_HEAD:
            await _respond(send, *_http.not_allowed())
            return
        kind = self._special[scope["path"]]
        head = scope["method"] == "HEAD"
        try:
            report = await health.default_registry().check_async(kind)  # type: ignore[arg-type]
            answer = endpoints.render(report, details=self.options.health_details, head=head)
        except Exception:
            answer = _http.unavailable("probe endpoint")
        await _respond(send, *answer)


def _headers(scope: Scope) -> dict[bytes, str]:
    return {k: v.decode("latin-1") for k, v in scope.get("headers", ())}


async def _respond(send: Send, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _suppressed(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run an excluded request with instrumentation suppressed (no child spans either)."""
    token = context.attach_otel_context(_http.suppressed_context())
    try:
        await app(scope, receive, send)
    finally:
        context.detach_otel_context(token)


class _HttpExchange(Exchange):
    """One HTTP request: parses the scope, wraps ``send``/``receive``, finishes at the last
    body chunk (streaming included) or when the app returns or raises."""

    __slots__ = (
        "_ending",
        "_fields",
        "_fields_token",
        "_id_header",
        "_otel_token",
        "_receive",
        "_root_path",
        "_send",
        "scope",
    )

    def __init__(
        self,
        middleware: ObservabilityMiddleware,
        scope: Scope,
        send: Send,
        route: str | None = None,
    ) -> None:
        headers = dict(scope.get("headers") or ())
        scheme = scope.get("scheme") or "http"
        if b"x-forwarded-proto" in headers or b"forwarded" in headers:
            scheme = origin.client_scheme(
                scheme, _text(headers.get(b"forwarded")), _text(headers.get(b"x-forwarded-proto"))
            )
        super().__init__(middleware._recorder, scope["method"], scheme, scope["path"])
        self.scope = scope
        self._send = send
        self._ending = False
        self._root_path = scope.get("root_path", "")
        self.route = route
        self._id_header = name = middleware._id_header
        raw = headers.get(name) if name is not None else None
        if raw is not None and _http.valid_request_id_bytes(raw):
            self.request_id = raw.decode("ascii")
        else:
            self.request_id = _http.new_request_id()
        carrier = None
        if b"traceparent" in headers or b"baggage" in headers:
            carrier = _carrier(scope["headers"])
        self.begin(self._attributes(scope, headers), carrier)

    def _attributes(self, scope: Scope, headers: dict[bytes, bytes]) -> dict[str, Any]:
        self.protocol = scope.get("http_version", "1.1")
        attributes: dict[str, Any] = {
            "http.request.method": self.method,
            "url.scheme": self.scheme,
            "url.path": self.path,
            "network.protocol.version": self.protocol,
        }
        address, port = _server(scope, headers, self.scheme)
        if address is not None:
            attributes["server.address"] = address
        if port is not None:
            attributes["server.port"] = port
        query = scope.get("query_string")
        if query:
            attributes["url.query"] = self.recorder.redactor.query(query.decode("latin-1"))
        client = scope.get("client")
        if client:
            self.client = client[0]
            attributes["client.address"] = client[0]
        agent = headers.get(b"user-agent")
        if agent is not None:
            attributes["user_agent.original"] = agent.decode("latin-1")
        if self.recorder.request_headers:
            attributes.update(
                self.recorder.capture(self.recorder.request_headers, scope["headers"])
            )
        return attributes

    async def run(self, app: ASGIApp, receive: Receive) -> None:
        """Call ``app`` with the span current and the request id bound."""
        self._receive = receive
        self._otel_token = context.attach_otel_context(self.context)
        self._fields_token = context.bind_shared({"request_id": self.request_id})
        self._fields = context.get_fields()
        lifecycle.inflight.enter()
        try:
            await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            if self.route is None and not self.status:
                self.route = self._find_route()
            self.fail(exc)
            raise
        finally:
            if not self.done:
                self.finish()
            lifecycle.inflight.exit()
            context.reset(self._fields_token)  # the tokens send() made, if it set them aside
            context.detach_otel_context(self._otel_token)
            if self._ending:  # the last chunk went to the server: the exchange is over
                self._let_go_of_server()

    def _let_go_of_server(self) -> None:
        """Drop the server's scope, ``send`` and ``receive`` once the app has returned
        and its last body chunk was sent (a task of the app may still send it later:
        then they stay).

        The request may still wait for the loop's next turn to be recorded, and thousands
        wait when the caller never lets its loop turn (``httpx.ASGITransport`` driving
        requests from one task): holding the server's objects kept 8.4 KB and 41
        GC-tracked objects alive per waiting request instead of 2.6 KB and 14.  Late
        calls get what a server gives once the response is complete: ``receive`` a
        disconnect, ``send`` a ``RuntimeError`` (as uvicorn raises)."""
        self.scope = {}
        self._receive = _disconnected
        self._send = _sent_after_return

    async def receive(self) -> Message:
        """The server's ``receive``, counting body bytes and noticing client disconnects."""
        message = await self._receive()
        kind = message["type"]
        if kind == "http.request":
            self.bytes_in += len(message.get("body", b""))
        elif kind == "http.disconnect" and not self._ending:
            self.disconnected = True
        return message

    def send(self, message: Message) -> Awaitable[None]:
        """The server's ``send``: notes the status, adds response headers, and finishes
        the request once the last body chunk has been sent.  Every message but the last
        goes straight to the server's ``send`` (no coroutine of ours in between); a 5xx
        waits for the app to return, so that an exception raised after the error page
        (Starlette's ServerErrorMiddleware) is recorded on this request."""
        kind = message["type"]
        if kind == "http.response.body":
            self.bytes_out += len(message.get("body", b""))
            if message.get("more_body", False):
                return self._send(message)
        elif kind == "http.response.start":
            return self._send(self._start(message))
        elif kind != "http.response.pathsend":
            return self._send(message)
        return self._send_last(message)

    async def _send_last(self, message: Message) -> None:
        """Send the last body chunk with the request's context set aside, then finish."""
        self._ending = True
        aside = self._set_aside()
        try:
            try:
                await self._send(message)
            finally:
                if aside:
                    self._otel_token = context.attach_otel_context(self.context)
                    self._fields_token = context.set_fields(self._fields)
        except BaseException:
            self.disconnected = True
            self.finish()
            raise
        self.end_mono = time.perf_counter_ns()
        if self.status < 500:
            self.finish_soon()

    def _set_aside(self) -> bool:
        """Set the request's context aside for the last ``send``, when it is the context
        in force and this is the task that set it; ``True`` if it was.

        What the server schedules while sending (uvicorn's keep-alive timer copies the
        current context) then does not keep the request's span and fields alive until
        it is cleaned up: those objects would otherwise outlive the request by thousands
        of requests and make the garbage collector walk them again and again.  ``send``
        puts the context back right after, for whatever the app does after the response
        (background tasks)."""
        if (
            context.current_otel_context() is not self.context
            or context.get_fields() is not self._fields
        ):
            return False  # the app has a context of its own set: keep it
        try:
            context.reset(self._fields_token)
        except (ValueError, RuntimeError):  # a copy of the context in a task the app
            return False  # started (ValueError), after run() had reset it (RuntimeError)
        context.detach_otel_context(self._otel_token)
        return True

    def _start(self, message: Message) -> Message:
        """Note the status and route; add the request id and opt-in response headers."""
        try:
            self.status = message["status"]
            if self.route is None:
                self.route = self._find_route()
            headers = message.get("headers") or []
            recorder = self.recorder
            extra = []
            name = self._id_header
            if name is not None:
                for key, _ in headers:
                    if key == name:
                        break
                else:  # the app set no request id header of its own
                    extra.append((name, self.request_id.encode("ascii")))
            if recorder.wants_response_headers:
                captured = recorder.capture(recorder.response_headers, headers)
                self.span.set_attributes(captured)
            if recorder.wants_trace_headers:
                extra.extend(trace_headers(self, recorder.options))
        except Exception:
            internal_error("asgi response start")
            return message
        return {**message, "headers": [*headers, *extra]}

    def _find_route(self) -> str | None:
        scope = self.scope
        resolver = self.recorder.options.route_resolver
        if resolver is not None:
            found = _http.call_resolver(resolver, scope)
            if found:
                return found
        found = scope.get(_http.ROUTE_KEY)
        if found:
            return str(found)
        if "route" not in scope:  # not a Starlette router: skip the call
            return None
        return _http.starlette_route(scope, self._root_path)


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}


async def _sent_after_return(message: Message) -> None:
    raise RuntimeError(f"ASGI message {message.get('type')!r} sent after the response completed")


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def _server(
    scope: Scope, headers: dict[bytes, bytes], scheme: str
) -> tuple[str | None, int | None]:
    """``server.address``/``server.port`` from the headers, else the listening socket."""
    host = headers.get(b"host")
    if host is not None or b"forwarded" in headers or b"x-forwarded-host" in headers:
        return origin.server(
            _text(host),
            scheme,
            _text(headers.get(b"forwarded")),
            _text(headers.get(b"x-forwarded-host")),
        )
    listening = scope.get("server")
    return (listening[0], listening[1]) if listening else (None, None)


def _carrier(raw: list[tuple[bytes, bytes]]) -> dict[str, str] | None:
    """The W3C propagation headers that came with the request, every line of them read
    per the specifications (``_http.w3c``: two ``traceparent`` lines are invalid, repeated
    ``tracestate`` and ``baggage`` lines are combined); ``None`` when there are none."""
    lines = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in raw if n in _W3C_NAMES]
    return dict(lines) if w3c.plain(lines) else w3c.carrier(lines)


_W3C_NAMES: Final = frozenset(name.encode() for name in w3c.NAMES)
