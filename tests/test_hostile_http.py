"""Hostile requests through the HTTP middleware (ASGI and WSGI alike): repeated W3C
headers, the process's redaction keys, huge query strings.

ASGI requests go through httpx's ASGI transport, which hands repeated header lines to
the app as separate entries as uvicorn does; WSGI requests that depend on how a server
joins repeated lines go through a real wsgiref server on loopback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest
from opentelemetry import baggage
from opentelemetry.trace import SpanKind

from tests.served import serving
from unified_obs.asgi import ObservabilityMiddleware as AsgiMiddleware
from unified_obs.testing import Captured, capture
from unified_obs.wsgi import ObservabilityMiddleware as WsgiMiddleware

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
OTHER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
CANARY = "c4n4ry-s3cr3t"
Headers = list[tuple[str, str]]
QUIET: dict[str, Any] = {"handle_signals": False, "outbound_http": False}
"""No signal handlers, and the test client's own requests untraced (no traceparent added)."""
seen_baggage: list[dict[str, object]] = []


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    """Answers 200 "ok" and notes the baggage it was called with."""
    seen_baggage.append(dict(baggage.get_all()))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answers 200 "ok" and notes the baggage it was called with."""
    seen_baggage.append(dict(baggage.get_all()))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def asgi_get(url: str, headers: Headers, **options: Any) -> httpx.Response:
    """One request through the ASGI middleware."""
    import asyncio

    async def go() -> httpx.Response:
        app = AsgiMiddleware(asgi_app, **options)
        transport = httpx.ASGITransport(app, client=("10.1.2.3", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return await c.get(url, headers=headers)

    return asyncio.run(go())


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No stderr lines from the test server."""


@contextmanager
def wsgi_server(**options: Any) -> Iterator[str]:
    """A real wsgiref server on a free loopback port serving the WSGI middleware."""
    server = make_server("127.0.0.1", 0, WsgiMiddleware(wsgi_app, **options), WSGIServer, _Quiet)
    with serving(server) as url:
        yield url


def wsgi_get(url: str, headers: Headers, **options: Any) -> httpx.Response:
    """One request through the WSGI middleware on a real server."""
    with wsgi_server(**options) as base, httpx.Client(base_url=base) as client:
        return client.get(url, headers=headers)


GETS = {"asgi": asgi_get, "wsgi": wsgi_get}


def server_span(cap: Captured) -> Any:
    """The one server span the request made (the test client's own spans aside)."""
    (span,) = [s for s in cap.spans if s.kind is SpanKind.SERVER]
    return span


@pytest.fixture(autouse=True)
def _forget_baggage() -> None:
    """Each test starts with no baggage noted."""
    seen_baggage.clear()


@pytest.mark.parametrize("kind", GETS)
def test_two_traceparents_start_a_new_trace(kind: str) -> None:
    """Two different traceparent lines are invalid (W3C): the server span starts a new
    trace instead of taking the last one as its parent, and tracestate is ignored."""
    lines = [("traceparent", PARENT), ("traceparent", OTHER), ("tracestate", "a=1")]
    with capture(**QUIET) as cap:
        assert GETS[kind]("/x", lines).status_code == 200
        span = server_span(cap)
    assert span.parent is None
    assert format(span.context.trace_id, "032x") not in {TRACE_ID, OTHER[3:35]}
    assert len(span.context.trace_state) == 0


@pytest.mark.parametrize("kind", GETS)
def test_repeated_tracestate_and_baggage_are_combined(kind: str) -> None:
    """Repeated tracestate and baggage lines are combined in order (RFC 9110), so the
    span's parent carries every tracestate member and the app every baggage entry."""
    lines = [("traceparent", PARENT), ("tracestate", "a=1"), ("tracestate", "b=2")]
    lines += [("baggage", "user=ann"), ("baggage", "tenant=acme")]
    with capture(**QUIET) as cap:
        assert GETS[kind]("/x", lines).status_code == 200
        span = server_span(cap)
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert list(span.context.trace_state.items()) == [("a", "1"), ("b", "2")]
    assert seen_baggage == [{"user": "ann", "tenant": "acme"}]


@pytest.mark.parametrize("kind", GETS)
def test_redact_keys_reach_captured_headers_and_the_query(kind: str) -> None:
    """setup(redact_keys=...) reaches the middleware: a captured header and a query
    parameter of that name are redacted (only the built-in names used to be)."""
    lines = [("x-pin", CANARY), ("x-tenant", "acme"), ("x-tenant", "beta")]
    options = {"capture_request_headers": ("X-Pin", "X-Tenant")}
    with capture(**QUIET, redact_keys=["x-pin", "pin"]) as cap:
        assert GETS[kind](f"/x?pin={CANARY}&page=2", lines, **options).status_code == 200
        attributes = dict(server_span(cap).attributes or {})
    assert attributes["http.request.header.x-pin"] == ("[REDACTED]",)
    assert attributes["http.request.header.x-tenant"] in (("acme", "beta"), ("acme,beta",))
    assert CANARY not in attributes["url.query"]
    assert "page=2" in attributes["url.query"]


def test_huge_query_string_is_cut_before_it_is_parsed() -> None:
    """An 868 KiB query string gives a url.query of at most the value length limit, and a
    secret beyond the limit never appears (ASGI, called directly: HTTP clients and WSGI
    servers refuse such a request line themselves)."""
    import asyncio

    query = ("q=" + "x" * (868 * 1024) + f"&token={CANARY}").encode()
    scope = {"type": "http", "method": "GET", "path": "/x", "raw_path": b"/x"}
    scope |= {"query_string": query, "headers": [], "scheme": "http", "http_version": "1.1"}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    with capture(**QUIET) as cap:
        asyncio.run(AsgiMiddleware(asgi_app)(scope, receive, send))
        attributes = dict(server_span(cap).attributes or {})
    assert sent[0]["status"] == 200
    assert len(attributes["url.query"]) <= 4096
    assert CANARY not in attributes["url.query"]
