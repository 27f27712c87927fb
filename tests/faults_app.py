"""An app the fault-injection server tests start under uvicorn and gunicorn (no tests here).

Each factory calls ``setup()`` (configured by the environment the test passes: whether
faults are armed, OTLP spans to the test's receiver, JSON access lines on stdout), adds
one rule (a 100 % abort with 503 on ``/items/*``, header control on, so only requests
asking for it by header are faulted) and returns the app behind the middleware.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import unified_obs as obs
from unified_obs.resilience import faults


def _configure() -> None:
    obs.setup()
    faults.configure(
        faults.FaultRule(kind="abort", percentage=100, status=503, routes=("/items/*",)),
        header_control=True,
        experiment_id="exp-http",
    )


def asgi_app() -> Any:
    """A bare ASGI app answering 200 "ok", behind the ASGI middleware."""
    from unified_obs.asgi import ObservabilityMiddleware

    _configure()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return ObservabilityMiddleware(app)


def wsgi_app() -> Any:
    """A bare WSGI app answering 200 "ok", behind the WSGI middleware."""
    from unified_obs.wsgi import ObservabilityMiddleware

    _configure()

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return ObservabilityMiddleware(app)
