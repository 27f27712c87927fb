"""The last ``send`` of a response runs outside the request's context, and only that.

What a server schedules while it sends the last body chunk (uvicorn's keep-alive timer
copies the current context) must not keep the request's span and fields alive; the app
itself sees its context before and after that ``send``, as it always did.
"""

from __future__ import annotations

import asyncio
import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
from opentelemetry import trace
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import unified_obs as obs
from unified_obs.asgi import Message, ObservabilityMiddleware
from unified_obs.context import SPAN_KEY
from unified_obs.testing import capture

_GET = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def _what_is_current() -> tuple[str | None, int | None]:
    """The bound request id and the current span's id (``None`` when no span)."""
    span_context = trace.get_current_span().get_span_context()
    span_id = span_context.span_id if span_context.is_valid else None
    return obs.bound_fields().get("request_id"), span_id


@pytest.mark.asyncio
async def test_the_server_sends_the_last_chunk_outside_the_request_context() -> None:
    """The server's ``send`` sees the request's span and id for the start and the first
    chunk, neither for the last; the app sees both again once that ``send`` returns."""
    server: list[tuple[str | None, int | None]] = []
    app_saw: list[tuple[str | None, int | None]] = []

    async def server_send(message: Message) -> None:
        server.append(_what_is_current())

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        app_saw.append(_what_is_current())
        await send({"type": "http.response.body", "body": b"b"})
        app_saw.append(_what_is_current())

    with capture() as cap:
        await ObservabilityMiddleware(app)(dict(_GET), _receive, server_send)
    span_id = cap.span("GET").context.span_id
    request_id = cap.logs[-1]["request_id"]
    ours = (request_id, span_id)
    assert server == [ours, ours, (None, None)]
    assert app_saw == [ours, ours]
    assert _what_is_current() == (None, None)  # and nothing is left behind
    assert cap.logs[-1]["status"] == 200
    assert cap.logs[-1]["bytes"] == 2


@pytest.mark.asyncio
async def test_an_app_span_current_at_the_last_send_stays_current() -> None:
    """An app that sends its response inside a span of its own keeps that span current
    for the server's ``send`` and after it: only the middleware's own context is set
    aside."""
    server: list[tuple[str | None, int | None]] = []
    app_saw: list[int | None] = []

    async def server_send(message: Message) -> None:
        server.append(_what_is_current())

    async def app(scope: Any, receive: Any, send: Any) -> None:
        with trace.get_tracer("app").start_as_current_span("render") as inner:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"done"})
            app_saw.append(trace.get_current_span().get_span_context().span_id)
            app_saw.append(inner.get_span_context().span_id)

    with capture() as cap:
        await ObservabilityMiddleware(app)(dict(_GET), _receive, server_send)
    render = cap.span("render").context.span_id
    request_id = cap.logs[-1]["request_id"]
    assert app_saw == [render, render]
    assert server == [(request_id, render), (request_id, render)]
    parent = cap.span("render").parent
    assert parent is not None
    assert parent.span_id == cap.span("GET").context.span_id


@pytest.mark.asyncio
async def test_a_task_that_sends_after_the_app_returned_gets_no_error() -> None:
    """A task the app started may send the last chunk after the app returned (and the
    middleware reset its context): the send reaches the server and nothing is raised."""
    sent: list[str] = []
    started = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def server_send(message: Message) -> None:
        sent.append(message["type"])

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})

        async def finish_later() -> None:
            await started.wait()
            await send({"type": "http.response.body", "body": b"late"})

        tasks.append(asyncio.create_task(finish_later()))

    with capture():
        await ObservabilityMiddleware(app)(dict(_GET), _receive, server_send)
        started.set()
        await tasks[0]  # raises if the middleware's send did
    assert sent == ["http.response.start", "http.response.body"]


async def _after_response(request: Request) -> Response:
    def later() -> None:
        obs.get_logger("app").info("after.response")

    return PlainTextResponse("ok", background=BackgroundTask(later))


@pytest.mark.asyncio
async def test_a_background_task_after_the_response_logs_with_the_request_context() -> None:
    """Starlette runs background tasks after the last chunk was sent: their lines still
    carry the request's id and trace ids."""
    app = ObservabilityMiddleware(Starlette(routes=[Route("/later", _after_response)]))

    async def server_send(message: Message) -> None:
        return None

    with capture() as cap:
        await app({**_GET, "path": "/later"}, _receive, server_send)
    (line,) = [r for r in cap.logs if r["event"] == "after.response"]
    (access,) = [r for r in cap.logs if r.get("logger") == "unified_obs.access"]
    span = cap.span("GET /later")
    assert line["request_id"] == access["request_id"]
    assert line["span_id"] == format(span.context.span_id, "016x")
    assert line["trace_id"] == format(span.context.trace_id, "032x")


@contextmanager
def _uvicorn(app: Any) -> Iterator[tuple[uvicorn.Server, asyncio.AbstractEventLoop, int]]:
    """uvicorn serving ``app`` on 127.0.0.1 (a port the OS picks) in a thread."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),))
    thread.start()
    try:
        for _ in range(500):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield server, loop, port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        loop.close()


def _timer_contexts(loop: asyncio.AbstractEventLoop) -> list[tuple[str, Any]]:
    """``(callback name, copied context)`` of every timer the loop holds, read on the loop."""

    async def read() -> list[tuple[str, Any]]:
        handles = list(loop._scheduled)  # type: ignore[attr-defined]
        return [(getattr(h._callback, "__name__", ""), h._context) for h in handles]

    return asyncio.run_coroutine_threadsafe(read(), loop).result(timeout=10)


def _holds(context: Any, span_id: int, request_id: str) -> bool:
    """Whether a copied ``contextvars.Context`` holds that span or that request id."""
    for value in context.values():
        span = value.get(SPAN_KEY) if hasattr(value, "get") else None
        if span is not None and span.get_span_context().span_id == span_id:
            return True
        if isinstance(value, dict) and value.get("request_id") == request_id:
            return True
    return False


def test_uvicorn_keep_alive_timer_does_not_hold_the_request_span() -> None:
    """Under a real uvicorn, a keep-alive connection's timer (set while the last chunk
    is sent) holds neither the finished request's span nor its bound fields."""

    async def hello(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello"})

    with capture(), _uvicorn(ObservabilityMiddleware(hello, traceresponse=True)) as served:
        _, loop, port = served
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            assert response.read() == b"hello"
            span_id = int(response.getheader("traceresponse", "").split("-")[2], 16)
            request_id = response.getheader("x-request-id", "")
            timers = _timer_contexts(loop)  # the connection is still open: its timer is set
        finally:
            connection.close()
    keep_alive = [context for name, context in timers if "keep_alive" in name]
    assert keep_alive, f"no keep-alive timer among {[name for name, _ in timers]}"
    assert not any(_holds(context, span_id, request_id) for _, context in timers)


@pytest.mark.asyncio
async def test_messages_before_the_last_go_straight_to_the_server() -> None:
    """For the response start and every chunk with more to come, the app gets the
    server's own awaitable back (no coroutine of the middleware's in between), with the
    request-id header already added; the last chunk goes through the middleware, which
    then finishes the request."""
    returned: list[object] = []
    seen: list[Message] = []

    class _ServerAwaitable:
        def __await__(self) -> Any:
            return iter(())

    def server_send(message: Message) -> _ServerAwaitable:
        seen.append(message)
        awaitable = _ServerAwaitable()
        returned.append(awaitable)
        return awaitable

    async def app(scope: Any, receive: Any, send: Any) -> None:
        given = [
            send({"type": "http.response.start", "status": 200, "headers": []}),
            send({"type": "http.response.body", "body": b"a", "more_body": True}),
        ]
        assert given == returned  # the very objects the server's send returned
        for awaitable in given:
            await awaitable
        last = send({"type": "http.response.body", "body": b"b"})
        assert len(returned) == 2  # the last chunk is not sent yet: a coroutine of ours
        await last

    with capture() as cap:
        await ObservabilityMiddleware(app)(dict(_GET), _receive, server_send)
    assert len(seen) == 3
    assert (b"x-request-id", cap.logs[-1]["request_id"].encode()) in seen[0]["headers"]
    assert cap.logs[-1]["bytes"] == 2
