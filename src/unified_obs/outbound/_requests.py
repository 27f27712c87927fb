"""requests: a hook on ``requests.adapters.HTTPAdapter.send``.

The transport adapter is requests' public extension point; it sees every attempt
(``Session.send`` calls it again for each redirect) with the final headers.  When
OpenTelemetry contrib instruments requests, its span covers the call and ours steps aside.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from requests.adapters import HTTPAdapter
from requests.models import PreparedRequest, Response

from ._call import ClientRecorder
from ._hooks import contrib_instruments, patch, unpatch

__all__ = ["install", "supported", "uninstall"]

_CONTRIB: Final = ("opentelemetry.instrumentation.requests", "RequestsInstrumentor")
_Send = Callable[..., Response]


def _hook(original: _Send, recorder: ClientRecorder) -> _Send:
    def send(self: Any, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        if contrib_instruments(*_CONTRIB):
            return original(self, request, *args, **kwargs)
        call = recorder.start(request.method or "GET", request.url or "", request.headers)
        if call is None:
            return original(self, request, *args, **kwargs)
        try:
            response = original(self, request, *args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        call.finish(response.status_code)
        return response

    return send


def supported() -> bool:
    """Every requests version we support has the hooked method."""
    return True


def install(recorder: ClientRecorder) -> None:
    """Hook the adapter every session mounts by default."""
    patch(HTTPAdapter, "send", lambda o: _hook(o, recorder))


def uninstall() -> None:
    """Take the hook off."""
    unpatch(HTTPAdapter, "send")
