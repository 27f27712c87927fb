"""``setup(health_details=...)`` reaches every probe: the ASGI and WSGI middleware's as
well as ``serve_admin``'s; details stay off by default and a middleware keyword wins."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import httpx
import orjson
import pytest

import unified_obs as obs
from unified_obs.asgi import ObservabilityMiddleware as AsgiMiddleware
from unified_obs.asgi import Receive, Scope, Send
from unified_obs.wsgi import ObservabilityMiddleware as WsgiMiddleware

_QUIET: dict[str, Any] = {
    "service_name": "svc",
    "traces_exporter": "none",
    "metrics_exporter": "none",
    "logs_exporter": "none",
    "handle_signals": False,
}


async def _asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"app"})


def _wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("content-type", "text/plain")])
    return [b"app"]


async def _probe_asgi(path: str, **options: Any) -> dict[str, Any]:
    transport = httpx.ASGITransport(AsgiMiddleware(_asgi_app, **options))
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        response = await client.get(path)
    assert response.headers["content-type"] == "application/health+json"
    body: dict[str, Any] = orjson.loads(response.content)
    return body


def _probe_wsgi(path: str, **options: Any) -> dict[str, Any]:
    transport = httpx.WSGITransport(WsgiMiddleware(_wsgi_app, **options))
    with httpx.Client(transport=transport, base_url="http://svc") as client:
        response = client.get(path)
    assert response.headers["content-type"] == "application/health+json"
    body: dict[str, Any] = orjson.loads(response.content)
    return body


async def _probe(adapter: str, path: str, **options: Any) -> dict[str, Any]:
    if adapter == "asgi":
        return await _probe_asgi(path, **options)
    return _probe_wsgi(path, **options)


ADAPTERS = pytest.mark.parametrize("adapter", ["asgi", "wsgi"])


@ADAPTERS
@pytest.mark.asyncio
async def test_setup_health_details_reaches_the_middleware_probes(adapter: str) -> None:
    """With ``setup(health_details=True)`` the middleware's ``/livez`` and ``/readyz``
    list every check with its status, as ``serve_admin`` does."""
    tel = obs.setup(health_details=True, **_QUIET)
    tel.health.add_check("disk", lambda: True, kind="liveness")
    tel.health.add_check("db", lambda: False)
    tel.health.mark_started()
    live = await _probe(adapter, "/livez")
    assert live["status"] == "pass"
    assert live["checks"]["disk"] == {"status": "pass"}
    ready = await _probe(adapter, "/readyz")
    assert ready["status"] == "fail"
    assert ready["checks"]["db"] == {"status": "fail"}


@ADAPTERS
@pytest.mark.asyncio
async def test_health_details_are_off_by_default(adapter: str) -> None:
    """Without the setting a probe body is the bare status: no check names leak."""
    tel = obs.setup(**_QUIET)
    tel.health.add_check("disk", lambda: True, kind="liveness")
    assert await _probe(adapter, "/livez") == {"status": "pass"}


@ADAPTERS
@pytest.mark.asyncio
async def test_middleware_keyword_wins_over_the_setting(adapter: str) -> None:
    """``health_details=False`` on the middleware keeps its probes bare even when
    ``setup(health_details=True)``; ``True`` shows details without the setting."""
    tel = obs.setup(health_details=True, **_QUIET)
    tel.health.add_check("disk", lambda: True, kind="liveness")
    assert await _probe(adapter, "/livez", health_details=False) == {"status": "pass"}
    obs.testing.reset()
    tel = obs.setup(**_QUIET)
    tel.health.add_check("disk", lambda: True, kind="liveness")
    body = await _probe(adapter, "/livez", health_details=True)
    assert body["checks"]["disk"] == {"status": "pass"}


def test_reset_turns_details_off_again() -> None:
    """``testing.reset()`` puts the details policy back to off for the next setup."""
    from unified_obs import endpoints, testing

    obs.setup(health_details=True, **_QUIET)
    assert endpoints.details_shown() is True
    testing.reset()
    assert endpoints.details_shown() is False
