"""httpx: hooks on ``HTTPTransport.handle_request`` and ``AsyncHTTPTransport.handle_async_request``.

The transports are httpx's public extension point and see every attempt (each redirect
is its own request), after auth and event hooks have set the headers.  A transport that
OpenTelemetry contrib instruments, globally or per client, is left to it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import httpx

from ._call import ClientRecorder
from ._hooks import contrib_instruments, patch, unpatch

__all__ = ["install", "supported", "uninstall"]

_CONTRIB: Final = ("opentelemetry.instrumentation.httpx", "HTTPXClientInstrumentor")


def _contrib_owns(transport: Any, method: str) -> bool:
    """Contrib instruments httpx globally, or this transport (``instrument_client`` wraps
    the method on the instance)."""
    return method in vars(transport) or contrib_instruments(*_CONTRIB)


def _sync_hook(
    original: Callable[[Any, httpx.Request], httpx.Response], recorder: ClientRecorder
) -> Callable[[Any, httpx.Request], httpx.Response]:
    def handle_request(self: Any, request: httpx.Request) -> httpx.Response:
        if _contrib_owns(self, "handle_request"):
            return original(self, request)
        call = recorder.start(request.method, str(request.url), request.headers)
        if call is None:
            return original(self, request)
        try:
            response = original(self, request)
        except BaseException as exc:
            call.fail(exc)
            raise
        call.finish(response.status_code)
        return response

    return handle_request


def _async_hook(
    original: Callable[[Any, httpx.Request], Awaitable[httpx.Response]], recorder: ClientRecorder
) -> Callable[[Any, httpx.Request], Awaitable[httpx.Response]]:
    async def handle_async_request(self: Any, request: httpx.Request) -> httpx.Response:
        if _contrib_owns(self, "handle_async_request"):
            return await original(self, request)
        call = recorder.start(request.method, str(request.url), request.headers)
        if call is None:
            return await original(self, request)
        try:
            response = await original(self, request)
        except BaseException as exc:
            call.fail(exc)
            raise
        call.finish(response.status_code)
        return response

    return handle_async_request


def supported() -> bool:
    """Every httpx version we support has the hooked method."""
    return True


def install(recorder: ClientRecorder) -> None:
    """Hook both httpx transports."""
    patch(httpx.HTTPTransport, "handle_request", lambda o: _sync_hook(o, recorder))
    patch(httpx.AsyncHTTPTransport, "handle_async_request", lambda o: _async_hook(o, recorder))


def uninstall() -> None:
    """Take the hooks off."""
    unpatch(httpx.HTTPTransport, "handle_request")
    unpatch(httpx.AsyncHTTPTransport, "handle_async_request")
