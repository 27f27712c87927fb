"""Apps the real-server tests start in subprocesses (no tests here).

Each factory calls ``unified_obs.setup()`` (configured by the environment the test
passes: OTLP spans to the test's receiver, JSON logs on stdout) and returns the app
wrapped in the middleware.  Every app has the same routes: ``/items/{id}`` (logs a
line), ``/boom`` (raises), ``/stream`` (three chunks 0.1 s apart); ASGI apps also have
``/ws`` (echo websocket).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import WebSocket as FastAPIWebSocket

import unified_obs as obs


def _setup() -> None:
    obs.setup()


def starlette_app() -> Any:
    """Starlette under the ASGI middleware."""
    import asyncio

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response, StreamingResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket

    from unified_obs.asgi import ObservabilityMiddleware

    _setup()

    async def item(request: Request) -> Response:
        obs.get_logger("app").info("item.read", item=request.path_params["item_id"])
        return PlainTextResponse("item")

    async def boom(request: Request) -> Response:
        raise RuntimeError("boom")

    async def stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(3):
                await asyncio.sleep(0.1)
                yield b"chunk"

        return StreamingResponse(chunks())

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    routes = [
        Route("/items/{item_id}", item),
        Route("/boom", boom),
        Route("/stream", stream),
        WebSocketRoute("/ws", echo),
    ]
    return ObservabilityMiddleware(Starlette(routes=routes))


def fastapi_app() -> Any:
    """FastAPI (its own built-in telemetry on, the default) under the ASGI middleware."""
    import asyncio

    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    from unified_obs.asgi import ObservabilityMiddleware

    _setup()
    api = FastAPI()  # its own telemetry on, as users leave it: still one server span

    @api.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        obs.get_logger("app").info("item.read", item=item_id)
        return {"item": item_id}

    @api.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    @api.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(3):
                await asyncio.sleep(0.1)
                yield b"chunk"

        return StreamingResponse(chunks())

    @api.websocket("/ws")
    async def echo(websocket: FastAPIWebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    return ObservabilityMiddleware(api)


def flask_app() -> Any:
    """Flask under the WSGI middleware."""
    import flask

    from unified_obs.wsgi import ObservabilityMiddleware

    _setup()
    app = flask.Flask("servers")
    app.config["PROPAGATE_EXCEPTIONS"] = True

    @app.route("/items/<int:item_id>")
    def item(item_id: int) -> str:
        obs.get_logger("app").info("item.read", item=item_id)
        return "item"

    @app.route("/boom")
    def boom() -> str:
        raise RuntimeError("boom")

    @app.route("/stream")
    def stream() -> Any:
        def chunks() -> Iterator[bytes]:
            for _ in range(3):
                time.sleep(0.1)
                yield b"chunk"

        return flask.Response(chunks())

    app.wsgi_app = ObservabilityMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    return app


def _django_item(request: Any, item_id: int) -> Any:
    from django.http import HttpResponse

    obs.get_logger("app").info("item.read", item=item_id)
    return HttpResponse("item")


def _django_boom(request: Any) -> Any:
    raise RuntimeError("boom")


def _django_stream(request: Any) -> Any:
    from django.http import StreamingHttpResponse

    def chunks() -> Iterator[bytes]:
        for _ in range(3):
            time.sleep(0.1)
            yield b"chunk"

    return StreamingHttpResponse(chunks())


class SlowGate:
    """A Django middleware placed after ours: 50 ms of work, and a 403 when asked."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        from django.http import HttpResponseForbidden

        time.sleep(0.05)
        if "HTTP_X_REJECT" in request.META:
            return HttpResponseForbidden("no")
        return self.get_response(request)


def django_app() -> Any:
    """Django (with ``unified_obs.django.RouteMiddleware``) under the WSGI middleware."""
    import django
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application
    from django.urls import path

    from unified_obs.wsgi import ObservabilityMiddleware

    _setup()
    settings.configure(
        DEBUG=False,
        SECRET_KEY="test-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["unified_obs.django.RouteMiddleware", f"{__name__}.SlowGate"],
        DEBUG_PROPAGATE_EXCEPTIONS=True,
        LOGGING_CONFIG=None,
    )
    django.setup()
    urlpatterns.extend(
        [
            path("items/<int:item_id>", _django_item),
            path("boom", _django_boom),
            path("stream", _django_stream),
        ]
    )
    return ObservabilityMiddleware(get_wsgi_application())


urlpatterns: list[Any] = []
"""Django's URL patterns (filled by :func:`django_app`; this module is its ROOT_URLCONF)."""
