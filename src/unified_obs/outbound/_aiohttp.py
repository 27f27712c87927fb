"""aiohttp's client: a client middleware (aiohttp >= 3.12) added to every ``ClientSession``.

Middlewares are aiohttp's public per-request hook; ours goes last, nearest the wire, so
it sees each attempt (redirects, a retrying middleware's retries) with the headers the
other middlewares set.  Sessions get it from a hook on ``ClientSession.__init__`` (the
``middlewares`` argument); a request that passes its own ``middlewares=`` replaces the
session's, ours included.  When OpenTelemetry contrib instruments aiohttp, ours steps aside.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import aiohttp

from ._call import ClientRecorder
from ._hooks import contrib_instruments, patch, unpatch

__all__ = ["install", "supported", "uninstall"]

_CONTRIB: Final = ("opentelemetry.instrumentation.aiohttp_client", "AioHttpClientInstrumentor")
_Handler = Callable[[aiohttp.ClientRequest], Any]


def supported() -> bool:
    """Whether this aiohttp has client middlewares (3.12 and later)."""
    return hasattr(aiohttp, "ClientMiddlewareType")


def _middleware(recorder: ClientRecorder) -> Callable[..., Any]:
    async def unified_obs_middleware(
        request: aiohttp.ClientRequest, handler: _Handler
    ) -> aiohttp.ClientResponse:
        if contrib_instruments(*_CONTRIB):
            return await handler(request)  # type: ignore[no-any-return]
        call = recorder.start(request.method, str(request.url), request.headers)
        if call is None:
            return await handler(request)  # type: ignore[no-any-return]
        try:
            response: aiohttp.ClientResponse = await handler(request)
        except BaseException as exc:
            call.fail(exc)
            raise
        call.finish(response.status)
        return response

    return unified_obs_middleware


def _init_hook(original: Callable[..., None], recorder: ClientRecorder) -> Callable[..., None]:
    middleware = _middleware(recorder)

    def __init__(self: Any, *args: Any, middlewares: Any = (), **kwargs: Any) -> None:
        original(self, *args, middlewares=(*middlewares, middleware), **kwargs)

    return __init__


def install(recorder: ClientRecorder) -> None:
    """Give every session made from now on our middleware (needs aiohttp >= 3.12)."""
    patch(aiohttp.ClientSession, "__init__", lambda o: _init_hook(o, recorder))


def uninstall() -> None:
    """Sessions made from now on go without it."""
    unpatch(aiohttp.ClientSession, "__init__")
