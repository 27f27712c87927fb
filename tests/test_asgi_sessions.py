"""ASGI beyond plain requests: websockets, lifespan, other scopes, disconnects, 1,000
concurrent requests on one loop, and failures of our own that must not reach the app."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

import unified_obs as obs
from unified_obs import health, lifecycle
from unified_obs.asgi import ObservabilityMiddleware
from unified_obs.testing import capture


async def _echo(websocket: WebSocket) -> None:
    await websocket.accept()
    for _ in range(100):
        await websocket.send_text(await websocket.receive_text())
    await websocket.close(code=1000)


async def _drive(app: Any, scope: dict[str, Any], incoming: list[dict[str, Any]]) -> list[Any]:
    """Run ``app`` as a server would: ``incoming`` queued for ``receive``; returns what it sent."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for message in incoming:
        inbox.put_nowait(message)
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)
        if message["type"] == "lifespan.startup.complete":
            sent.append(health.default_registry().check_sync("startup").ok)
            inbox.put_nowait({"type": "lifespan.shutdown"})

    await app(scope, inbox.get, send)
    return sent


@pytest.mark.asyncio
@pytest.mark.parametrize("room", ["lobby", "kitchen"])  # twice: no state left between tests
async def test_websocket_gets_one_connection_span_and_its_own_metrics(room: str) -> None:
    """100 messages each way make one span with message counts and the close code."""
    app = ObservabilityMiddleware(Starlette(routes=[WebSocketRoute("/ws/{room}", _echo)]))
    scope = {"type": "websocket", "path": f"/ws/{room}", "headers": [], "query_string": b""}
    incoming = [{"type": "websocket.connect"}]
    incoming += [{"type": "websocket.receive", "text": str(n)} for n in range(100)]
    with capture() as cap:
        sent = await _drive(app, scope, incoming)
        spans = list(cap.spans)
        lines = [r for r in cap.logs if r.get("event") == "websocket.session"]
        count = cap.metric(
            "websocket.server.connection.duration",
            **{"http.route": "/ws/{room}", "websocket.close.code": "1000"},
        )
    assert [m["text"] for m in sent if m["type"] == "websocket.send"] == [
        str(n) for n in range(100)
    ]
    assert [s.name for s in spans] == ["WEBSOCKET /ws/{room}"]
    attributes = dict(spans[0].attributes or {})
    assert attributes["websocket.messages.received"] == 100
    assert attributes["websocket.messages.sent"] == 100
    assert attributes["websocket.close.code"] == 1000
    assert count == 1
    assert len(lines) == 1
    assert lines[0]["route"] == "/ws/{room}"


@pytest.mark.asyncio
async def test_lifespan_marks_startup_and_runs_the_shutdown_sequence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Startup complete -> the registry is started; shutdown -> the sequence runs, in a
    thread, before the server hears that shutdown completed."""
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        events.append("app startup")
        yield
        events.append("app shutdown")

    def sequence() -> None:
        events.append(f"sequence in {threading.current_thread().name}")

    monkeypatch.setattr(lifecycle, "run_shutdown_sequence", sequence)
    app = ObservabilityMiddleware(Starlette(lifespan=lifespan))
    assert not health.default_registry().check_sync("startup").ok
    sent = await _drive(app, {"type": "lifespan"}, [{"type": "lifespan.startup"}])
    assert [m if isinstance(m, bool) else m["type"] for m in sent] == [
        "lifespan.startup.complete",
        True,
        "lifespan.shutdown.complete",
    ]
    assert events[:2] == ["app startup", "app shutdown"]
    assert events[2].startswith("sequence in ")
    assert events[2] != f"sequence in {threading.current_thread().name}"


@pytest.mark.asyncio
async def test_apps_without_lifespan_support_still_count_as_started() -> None:
    """An app that rejects lifespan scopes: the error reaches the server, startup is marked."""

    async def http_only(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        raise AssertionError("nothing to send")

    with pytest.raises(AssertionError):
        await ObservabilityMiddleware(http_only)({"type": "lifespan"}, receive, send)
    assert health.default_registry().check_sync("startup").ok


@pytest.mark.asyncio
async def test_unknown_scope_types_pass_through_untouched() -> None:
    """Future scope types reach the app as they are, with the server's own callables."""
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive, send))

    async def receive() -> dict[str, Any]:
        return {}

    async def send(message: Any) -> None:
        return None

    scope = {"type": "webtransport", "path": "/"}
    await ObservabilityMiddleware(app)(scope, receive, send)
    assert seen == [(scope, receive, send)]


@pytest.mark.asyncio
async def test_client_disconnect_while_streaming_is_recorded() -> None:
    """A send that fails (client gone) ends the request, marked as disconnected."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b", "more_body": False})

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body"):
            raise OSError("connection reset")

    scope = {"type": "http", "method": "GET", "path": "/s", "headers": [], "query_string": b""}
    with capture() as cap:
        with pytest.raises(OSError, match="reset"):
            await ObservabilityMiddleware(app)(scope, receive, send)
        span = cap.spans[0]
        lines = [r for r in cap.logs if r.get("logger") == "unified_obs.access"]
    assert (span.attributes or {})["unified_obs.client_disconnected"] is True
    assert lines[0]["client_disconnected"] is True
    assert lines[0]["bytes"] == 2


@pytest.mark.asyncio
async def test_a_thousand_concurrent_requests_do_not_cross_talk() -> None:
    """1,000 interleaved requests on one loop: every log line, request id and span id
    belongs to the request that produced it."""

    async def work(request: Request) -> Response:
        marker = request.path_params["n"]
        await asyncio.sleep(random.random() / 100)
        obs.get_logger("app").info("work", marker=marker)
        await asyncio.sleep(random.random() / 100)
        return PlainTextResponse(marker)

    app = ObservabilityMiddleware(Starlette(routes=[Route("/work/{n}", work)]))
    with capture() as cap:
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answers = await asyncio.gather(
                *(
                    client.get(f"/work/{n}", headers={"x-request-id": f"id-{n}"})
                    for n in range(1000)
                )
            )
        work_lines = [r for r in cap.logs if r.get("event") == "work"]
        access = {r["request_id"]: r for r in cap.logs if r.get("logger") == "unified_obs.access"}
        spans = {format(s.context.span_id, "016x"): s for s in cap.spans}
    assert [a.text for a in answers] == [str(n) for n in range(1000)]
    assert [a.headers["x-request-id"] for a in answers] == [f"id-{n}" for n in range(1000)]
    assert len(spans) == 1000
    assert len(work_lines) == 1000
    for line in work_lines:
        marker = line["marker"]
        assert line["request_id"] == f"id-{marker}"
        assert (spans[line["span_id"]].attributes or {})["url.path"] == f"/work/{marker}"
        assert access[line["request_id"]]["span_id"] == line["span_id"]
        assert access[line["request_id"]]["path"] == f"/work/{marker}"


@pytest.mark.asyncio
async def test_failures_inside_the_middleware_never_reach_the_app(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broken metrics backend or log pipeline costs telemetry, never the response."""

    async def ok(request: Request) -> Response:
        return PlainTextResponse("fine")

    app = ObservabilityMiddleware(Starlette(routes=[Route("/", ok)]))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("metrics down")

    monkeypatch.setattr(app._recorder, "observer", broken)
    with capture():
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/")
    assert response.text == "fine"


@pytest.mark.asyncio
async def test_requests_work_before_setup_and_odd_scopes_pass_through() -> None:
    """Without setup() the middleware still answers and counts; a scope it cannot read
    reaches the app uninstrumented instead of failing."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = ObservabilityMiddleware(app)
    transport = httpx.ASGITransport(middleware)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/x")).text == "ok"
        scrape = await client.get("/metrics")
    assert 'http_route=""' in scrape.text  # unmatched: no made-up route
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    await middleware({"type": "http", "path": "/odd"}, receive, send)  # no method, no headers
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
