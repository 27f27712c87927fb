"""Behaviour that must match across ASGI (Starlette) and WSGI (Flask), in-process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import flask
import httpx
import pytest
from opentelemetry.trace import StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import unified_obs as obs
from unified_obs import asgi, wsgi
from unified_obs.testing import Captured, capture

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
Send = Callable[..., httpx.Response]


async def _item(request: Request) -> Response:
    obs.get_logger("app").info("item.read")
    return PlainTextResponse("item")


async def _boom(request: Request) -> Response:
    raise RuntimeError("boom")


async def _own_id(request: Request) -> Response:
    return PlainTextResponse("own", headers={"X-Request-ID": "app-chosen"})


def _starlette(**options: Any) -> Send:
    app = asgi.ObservabilityMiddleware(
        Starlette(
            routes=[
                Route("/items/{item_id}", _item),
                Route("/boom", _boom),
                Route("/own-id", _own_id),
            ]
        ),
        **options,
    )

    async def go(method: str, path: str, headers: dict[str, str]) -> httpx.Response:
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return await c.request(method, path, headers=headers)

    return lambda method, path, headers=None: asyncio.run(go(method, path, headers or {}))


def _flask(**options: Any) -> Send:
    app = flask.Flask("parity")
    app.config["PROPAGATE_EXCEPTIONS"] = True

    @app.route("/items/<item_id>", methods=["GET", "PURGE"])
    def item(item_id: str) -> str:
        obs.get_logger("app").info("item.read")
        return "item"

    @app.route("/boom")
    def boom() -> str:
        raise RuntimeError("boom")

    @app.route("/own-id")
    def own_id() -> tuple[str, dict[str, str]]:
        return "own", {"X-Request-ID": "app-chosen"}

    wrapped = wsgi.ObservabilityMiddleware(app.wsgi_app, **options)

    def go(method: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        transport = httpx.WSGITransport(wrapped)
        with httpx.Client(transport=transport, base_url="http://testserver") as client:
            try:
                return client.request(method, path, headers=headers or {})
            except RuntimeError:  # re-raised by the middleware: the server answers 500
                return httpx.Response(500)

    return go


KINDS = {"asgi": (_starlette, "/items/{item_id}"), "wsgi": (_flask, "/items/<item_id>")}
kinds = pytest.mark.parametrize("kind", sorted(KINDS))


def _access(cap: Captured) -> list[dict[str, Any]]:
    return [r for r in cap.logs if r.get("logger") == "unified_obs.access"]


def _series(cap: Captured, route: str, status: str, error: str = "", method: str = "GET") -> Any:
    return cap.metric(
        "http.server.request.duration",
        **{
            "http.request.method": method,
            "http.route": route,
            "http.response.status_code": status,
            "url.scheme": "http",
            "error.type": error,
            "network.protocol.version": "1.1",
        },
    )


@kinds
def test_request_span_metric_and_log_agree(kind: str) -> None:
    """Route-named span under the incoming trace, one series per template, one log line
    carrying the span's trace id and the echoed request id."""
    factory, template = KINDS[kind]
    with capture() as cap:
        send = factory()
        for n in range(3):
            response = send("GET", f"/items/{n}?token=x", {"traceparent": TRACEPARENT})
        span = cap.spans[-1]
        lines = _access(cap)
        count = _series(cap, template, "200")
    assert response.status_code == 200
    assert span.name == f"GET {template}"
    assert (span.attributes or {})["url.query"] == "token=%5BREDACTED%5D"
    assert format(span.context.trace_id, "032x") == TRACEPARENT[3:35]
    assert count == 3
    assert len(lines) == 3
    assert lines[-1]["trace_id"] == TRACEPARENT[3:35]
    assert lines[-1]["request_id"] == response.headers["x-request-id"]
    assert lines[-1]["route"] == template


@kinds
def test_unmatched_paths_share_one_label_value(kind: str) -> None:
    """404s from scanners are counted under one route value and spans named by the method."""
    factory, _ = KINDS[kind]
    with capture() as cap:
        send = factory()
        statuses = {send("GET", f"/.env{n}").status_code for n in range(20)}
        names = {s.name for s in cap.spans}
        count = _series(cap, "", "404")  # one series, without a made-up http.route
    assert statuses == {404}
    assert names == {"GET"}
    assert count == 20


@kinds
def test_exceptions_are_recorded_logged_once_and_reraised(kind: str) -> None:
    """An exception escaping the app: status 500, error.type, span Error, one error log."""
    factory, _ = KINDS[kind]
    with capture() as cap:
        response = factory()("GET", "/boom")
        span = cap.spans[0]
        errors = [r for r in cap.logs if r.get("exception")]
        count = _series(cap, "/boom", "500", "RuntimeError")
    assert response.status_code == 500
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "RuntimeError"
    assert len(errors) == 1
    assert errors[0]["logger"] == "unified_obs.access"
    assert count == 1


@kinds
def test_request_ids_are_echoed_bound_or_replaced(kind: str) -> None:
    """A valid X-Request-ID is echoed and bound to the app's logs; an unsafe one replaced."""
    factory, _ = KINDS[kind]
    with capture() as cap:
        send = factory()
        good = send("GET", "/items/1", {"x-request-id": "abc-123"})
        bad = send("GET", "/items/1", {"x-request-id": "a b"})
        app_lines = [r for r in cap.logs if r.get("event") == "item.read"]
    assert good.headers["x-request-id"] == "abc-123"
    assert app_lines[0]["request_id"] == "abc-123"
    assert len(bad.headers["x-request-id"]) == 32
    assert app_lines[1]["request_id"] == bad.headers["x-request-id"]


@kinds
def test_endpoints_and_excluded_paths_make_no_telemetry(kind: str) -> None:
    """/metrics and probes are served; they and excluded paths make no span, log or series."""
    factory, template = KINDS[kind]
    with capture() as cap:
        send = factory(excluded_paths=("/items/9",))
        send("GET", "/items/1")
        scrape = send("GET", "/metrics")
        live, head = send("GET", "/livez"), send("HEAD", "/readyz")
        excluded = send("GET", "/items/9")
        spans, lines = list(cap.spans), _access(cap)
    assert scrape.status_code == 200
    assert "http_server_request_duration_seconds_bucket" in scrape.text
    assert live.status_code == 200
    assert live.json() == {"status": "pass"}
    assert head.content == b""
    assert excluded.text == "item"
    assert [s.name for s in spans] == [f"GET {template}"]
    assert len(lines) == 1


@kinds
def test_unknown_methods_and_header_capture(kind: str) -> None:
    """_OTHER normalisation and allowlisted, redacted header capture behave the same."""
    factory, template = KINDS[kind]
    headers = {"x-tenant": "acme", "authorization": "Bearer s3cret"}
    with capture() as cap:
        send = factory(capture_request_headers=("x-tenant", "authorization"))
        send("PURGE", "/items/1", headers)
        span = cap.spans[0]
    attributes = dict(span.attributes or {})
    assert span.name == f"HTTP {template}"
    assert attributes["http.request.method"] == "_OTHER"
    assert attributes["http.request.method_original"] == "PURGE"
    assert attributes["http.request.header.x-tenant"] == ("acme",)
    assert attributes["http.request.header.authorization"] == ("[REDACTED]",)


@kinds
def test_an_app_supplied_request_id_header_is_not_duplicated(kind: str) -> None:
    """When the app sets X-Request-ID itself, the response carries exactly one."""
    factory, _ = KINDS[kind]
    with capture():
        response = factory()("GET", "/own-id")
    assert response.headers.get_list("x-request-id") == ["app-chosen"]


@kinds
def test_a_failing_metrics_renderer_answers_500_not_an_exception(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken /metrics renderer costs the scrape (500), never the server or the app."""
    from unified_obs import metrics

    def broken(*args: Any) -> Any:
        raise RuntimeError("registry broken")

    monkeypatch.setattr(metrics, "render", broken)
    factory, _ = KINDS[kind]
    with capture():
        send = factory()
        assert send("GET", "/metrics").status_code == 500
        assert send("GET", "/items/1").status_code == 200


@kinds
def test_request_attributes_keep_to_the_length_limit(kind: str) -> None:
    """The span keeps the middleware's attribute dict as it is only within the limits: a
    user agent longer than ``attribute_value_length_limit`` is cut to it, as the SDK
    cuts any value, and the other attributes are untouched."""
    factory, _ = KINDS[kind]
    with capture(attribute_value_length_limit=32) as cap:
        send = factory()
        send("GET", "/items/1", {"user-agent": "a" * 100})
        send("GET", "/items/2", {"user-agent": "short"})
        long, short = ((s.attributes or {}) for s in cap.spans[-2:])
    assert long["user_agent.original"] == "a" * 32
    assert short["user_agent.original"] == "short"
    assert long["url.path"] == "/items/1"
    assert long["http.request.method"] == "GET"


@kinds
def test_captured_request_headers_stay_sequences(kind: str) -> None:
    """Captured headers (lists of values) go through the SDK's checks: the span holds
    them as tuples, as it holds any sequence attribute."""
    factory, _ = KINDS[kind]
    with capture() as cap:
        send = factory(capture_request_headers=("x-tenant",))
        send("GET", "/items/1", {"x-tenant": "acme"})
        span = cap.spans[-1]
    assert (span.attributes or {})["http.request.header.x-tenant"] == ("acme",)
