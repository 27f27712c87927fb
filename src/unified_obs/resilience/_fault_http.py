"""Fault injection in front of an ASGI or WSGI app (the middleware wraps the app with these
while the process is armed, inside the request's span).

Rules match the request path in ``routes`` and its headers in ``headers`` (names in lower
case).  A delay waits (``asyncio.sleep`` under ASGI, ``time.sleep`` under WSGI, at most
``max_delay``) before the app runs; an abort answers the rule's status with a short text
body instead of calling the app, so the middleware records that status like any other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from http import HTTPStatus
from typing import Any, Final

from .faults import Fault, injector

__all__ = ["BODY", "faulty_asgi", "faulty_wsgi"]

BODY: Final = b"fault injected by unified_obs\n"
_HEADERS: Final = [(b"content-type", b"text/plain; charset=utf-8")]
Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]
OnFault = Callable[[Fault], None]


def faulty_asgi(app: ASGIApp, on_fault: OnFault | None = None) -> ASGIApp:
    """``app`` behind the armed process's faults; ``on_fault`` hears of each one injected
    (the middleware flags its access line)."""

    async def faulty(scope: Scope, receive: Any, send: Any) -> None:
        fault = _asgi_fault(scope)
        if fault is None:
            await app(scope, receive, send)
            return
        if on_fault is not None:
            on_fault(fault)
        await injector().wait_out_async(fault)
        if fault.abort is None:
            await app(scope, receive, send)
            return
        headers = [*_HEADERS, (b"content-length", str(len(BODY)).encode())]
        await send({"type": "http.response.start", "status": fault.status, "headers": headers})
        await send({"type": "http.response.body", "body": BODY})

    return faulty


def _asgi_fault(scope: Scope) -> Fault | None:
    try:
        headers = {
            bytes(k).decode("latin-1").lower(): bytes(v).decode("latin-1")
            for k, v in scope.get("headers") or ()
        }
    except Exception:
        headers = {}
    return injector().begin(route=scope.get("path"), headers=headers)


def faulty_wsgi(app: WSGIApp, on_fault: OnFault | None = None) -> WSGIApp:
    """``app`` behind the armed process's faults; ``on_fault`` as for :func:`faulty_asgi`."""

    def faulty(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        headers = {
            key[5:].replace("_", "-").lower(): str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        fault = injector().begin(route=environ.get("PATH_INFO"), headers=headers)
        if fault is None:
            return app(environ, start_response)
        if on_fault is not None:
            on_fault(fault)
        injector().wait_out(fault)
        if fault.abort is None:
            return app(environ, start_response)
        start_response(
            f"{fault.status} {_phrase(fault.status)}",
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(BODY)))],
        )
        return [BODY]

    return faulty


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Fault Injected"
