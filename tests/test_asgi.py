"""ASGI middleware in-process: spans, metrics, access log, request ids, endpoints, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

import unified_obs as obs
from unified_obs.asgi import ObservabilityMiddleware
from unified_obs.testing import Captured, capture

PARENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{PARENT_TRACE}-b7ad6b7169203331-01"


async def _item(request: Request) -> Response:
    obs.get_logger("app").info("item.read", item=dict(request.path_params))
    return PlainTextResponse("item")


async def _boom(request: Request) -> Response:
    raise RuntimeError("boom")


async def _stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            await asyncio.sleep(0.05)
            yield b"chunk"

    return StreamingResponse(chunks())


async def _background(request: Request) -> Response:
    return PlainTextResponse("done", background=BackgroundTask(asyncio.sleep, 0.3))


async def _internal(request: Request) -> Response:
    with trace.get_tracer("app").start_as_current_span("db.query"):
        return PlainTextResponse("internal")


def starlette_app() -> Starlette:
    """A Starlette app with templated, mounted, failing, streaming and background routes."""
    return Starlette(
        routes=[
            Route("/items/{item_id:int}", _item),
            Route("/boom", _boom),
            Route("/stream", _stream),
            Route("/background", _background),
            Route("/internal/job", _internal),
            Mount("/api", routes=[Route("/users/{user_id}", _item)]),
        ]
    )


async def _get(app: Any, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app, raise_app_exceptions=False, client=("10.1.2.3", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.request(kwargs.pop("method", "GET"), path, **kwargs)


def _access(cap: Captured) -> list[dict[str, Any]]:
    return [r for r in cap.logs if r.get("logger") == "unified_obs.access"]


def _duration_count(cap: Captured, route: str, status: str, error: str = "") -> float | None:
    labels = {
        "http.request.method": "GET",
        "http.route": route,
        "http.response.status_code": status,
        "url.scheme": "http",
        "error.type": error,
        "network.protocol.version": "1.1",
    }
    return cap.metric("http.server.request.duration", **labels)


@pytest.mark.asyncio
async def test_one_server_span_with_stable_attributes_and_incoming_parent() -> None:
    """A request yields one SERVER span named by the route template, child of traceparent."""
    with capture() as cap:
        app = ObservabilityMiddleware(starlette_app())
        response = await _get(
            app, "/items/7?q=1&token=secret", headers={"traceparent": TRACEPARENT}
        )
        assert response.status_code == 200
        span = cap.span("GET /items/{item_id}")
    assert span.kind is SpanKind.SERVER
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == TRACEPARENT[36:52]
    assert format(span.context.trace_id, "032x") == PARENT_TRACE
    attributes = dict(span.attributes or {})
    assert attributes == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": "/items/7",
        "url.query": "q=1&token=%5BREDACTED%5D",
        "network.protocol.version": "1.1",
        "server.address": "testserver",
        "server.port": 80,
        "client.address": "10.1.2.3",
        "user_agent.original": f"python-httpx/{httpx.__version__}",
        "http.route": "/items/{item_id}",
        "http.response.status_code": 200,
    }
    assert span.status.status_code is StatusCode.UNSET


@pytest.mark.asyncio
async def test_red_metrics_and_access_log_share_the_request_identity() -> None:
    """Duration histogram by route template and status; the access log line carries the
    same trace id as the span and the request id echoed in the response."""
    with capture() as cap:
        app = ObservabilityMiddleware(starlette_app())
        response = await _get(app, "/items/1", headers={"traceparent": TRACEPARENT})
        response = await _get(app, "/items/2", headers={"x-request-id": "req-42"})
        assert _duration_count(cap, "/items/{item_id}", "200") == 2
        assert (
            cap.metric(
                "http.server.active_requests",
                **{"http.request.method": "GET", "url.scheme": "http"},
            )
            == 0
        )
        lines = _access(cap)
        app_lines = [r for r in cap.logs if r.get("event") == "item.read"]
    assert response.headers["x-request-id"] == "req-42"
    assert len(lines) == 2
    assert lines[0]["trace_id"] == PARENT_TRACE
    second = lines[1]
    assert second["request_id"] == "req-42" == app_lines[1]["request_id"]
    assert second["trace_id"] == app_lines[1]["trace_id"]
    assert {k: second[k] for k in ("method", "path", "route", "status", "bytes", "client")} == {
        "method": "GET",
        "path": "/items/2",
        "route": "/items/{item_id}",
        "status": 200,
        "bytes": 4,
        "client": "10.1.2.3",
    }
    assert second["duration_ms"] > 0


@pytest.mark.asyncio
async def test_fastapi_router_prefix_and_starlette_mount_give_full_templates() -> None:
    """Templates include router prefixes and mount paths, never the raw path."""
    api = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})
    router = APIRouter(prefix="/v1")

    @router.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, int]:
        return {"id": order_id}

    api.include_router(router)
    with capture() as cap:
        await _get(ObservabilityMiddleware(api), "/v1/orders/5")
        await _get(ObservabilityMiddleware(starlette_app()), "/api/users/abc")
        names = sorted(s.name for s in cap.spans)
    assert names == ["GET /api/users/{user_id}", "GET /v1/orders/{order_id}"]


@pytest.mark.asyncio
async def test_scanner_404s_share_one_series_and_never_name_spans_by_path() -> None:
    """Random unmatched paths produce one metric series and spans named by the method."""
    with capture() as cap:
        app = ObservabilityMiddleware(starlette_app())
        for i in range(40):
            assert (await _get(app, f"/wp-admin/{i}.php")).status_code == 404
        assert _duration_count(cap, "", "404") == 40  # no made-up http.route
        spans = list(cap.spans)
        series = cap.metric("http.server.request.duration")
    assert {s.name for s in spans} == {"GET"}
    assert all("http.route" not in (s.attributes or {}) for s in spans)
    assert series == 40  # no labels match every series: one answer, the shared one above


@pytest.mark.asyncio
async def test_exception_is_recorded_logged_once_and_reraised() -> None:
    """error.type and span status Error, one error log with a structured traceback, and the
    exception still reaches the server (re-raised)."""
    with capture() as cap:
        app = ObservabilityMiddleware(starlette_app())
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            with pytest.raises(RuntimeError, match="boom"):
                await client.get("/boom")
        span = cap.span("GET /boom")
        errors = [r for r in cap.logs if "exception" in r or "exc_info" in r]
        count = _duration_count(cap, "/boom", "500", "RuntimeError")
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "RuntimeError"
    assert (span.attributes or {})["http.response.status_code"] == 500
    assert [e.name for e in span.events] == ["exception"]
    assert span.start_time is not None
    assert span.end_time is not None
    assert span.start_time <= span.events[0].timestamp <= span.end_time
    assert len(errors) == 1
    assert errors[0]["logger"] == "unified_obs.access"
    assert errors[0]["level"] == "error"
    assert count == 1


@pytest.mark.asyncio
async def test_streaming_duration_runs_to_the_last_chunk_not_background_tasks() -> None:
    """A streamed body is timed to its last chunk; a background task does not extend it."""
    with capture() as cap:
        app = ObservabilityMiddleware(starlette_app())
        assert (await _get(app, "/stream")).content == b"chunk" * 4
        await _get(app, "/background")
        stream = cap.span("GET /stream")
        background = cap.span("GET /background")
        lines = {r["path"]: r for r in _access(cap)}
    assert stream.end_time is not None
    assert stream.start_time is not None
    assert (stream.end_time - stream.start_time) / 1e9 >= 0.2
    assert lines["/stream"]["duration_ms"] >= 200
    assert lines["/stream"]["bytes"] == 20
    assert background.end_time is not None
    assert background.start_time is not None
    assert (background.end_time - background.start_time) / 1e9 < 0.3


@pytest.mark.asyncio
@pytest.mark.parametrize("incoming", ["x" * 200, "bad id", "evil\r\nheader", 'quote"d'])
async def test_invalid_request_ids_are_replaced(incoming: str) -> None:
    """An over-long or unsafe X-Request-ID is not trusted: a fresh id is generated."""
    with capture() as cap:
        response = await _get(
            ObservabilityMiddleware(starlette_app()), "/items/1", headers={"x-request-id": incoming}
        )
        line = _access(cap)[0]
    echoed = response.headers["x-request-id"]
    assert echoed != incoming
    assert len(echoed) == 32
    assert line["request_id"] == echoed


@pytest.mark.asyncio
async def test_endpoints_are_served_and_kept_out_of_telemetry() -> None:
    """/metrics and the probes answer; they make no span, access log or metric sample."""
    with capture() as cap:
        app = ObservabilityMiddleware(starlette_app())
        await _get(app, "/items/1")
        scrape = await _get(app, "/metrics")
        probes = [await _get(app, p) for p in ("/livez", "/healthz", "/startupz", "/readyz")]
        refused = await _get(app, "/metrics", method="POST")
        spans, lines = list(cap.spans), _access(cap)
    assert scrape.status_code == 200
    assert 'http_route="/items/{item_id}"' in scrape.text
    assert "/metrics" not in scrape.text
    assert "/livez" not in scrape.text
    assert [p.status_code for p in probes[:2]] == [200, 200]
    assert refused.status_code == 405
    assert len(spans) == 1
    assert len(lines) == 1


@pytest.mark.asyncio
async def test_endpoint_paths_are_configurable_and_can_be_turned_off() -> None:
    """Moved endpoints answer at their new path; turned-off ones reach the app."""
    with capture():
        app = ObservabilityMiddleware(
            starlette_app(), metrics_path=None, probe_paths={"/-/ready": "readiness"}
        )
        assert (await _get(app, "/metrics")).status_code == 404
        assert (await _get(app, "/livez")).status_code == 404
        assert (await _get(app, "/-/ready")).status_code in (200, 503)


@pytest.mark.asyncio
async def test_excluded_paths_suppress_the_request_and_its_child_spans() -> None:
    """User-excluded paths (prefix patterns too) produce no spans at all, children included."""
    with capture() as cap:
        app = ObservabilityMiddleware(starlette_app(), excluded_paths=("/internal/*",))
        assert (await _get(app, "/internal/job")).text == "internal"
        await _get(app, "/items/3")
        names = [s.name for s in cap.spans]
        lines = _access(cap)
    assert names == ["GET /items/{item_id}"]
    assert [line["path"] for line in lines] == ["/items/3"]


@pytest.mark.asyncio
async def test_header_capture_is_allowlisted_and_redacts_credentials() -> None:
    """Only listed headers are captured; Authorization is redacted unless unredacted."""
    headers = {"x-tenant": "acme", "authorization": "Bearer s3cret", "x-other": "no"}
    with capture() as cap:
        app = ObservabilityMiddleware(
            starlette_app(),
            capture_request_headers=("X-Tenant", "Authorization"),
            capture_response_headers=("content-type",),
        )
        await _get(app, "/items/1", headers=headers)
        app = ObservabilityMiddleware(
            starlette_app(),
            capture_request_headers=("authorization",),
            unredacted_headers=("authorization",),
        )
        await _get(app, "/items/2", headers=headers)
        first, second = (dict(s.attributes or {}) for s in cap.spans)
    assert first["http.request.header.x-tenant"] == ("acme",)
    assert first["http.request.header.authorization"] == ("[REDACTED]",)
    assert first["http.response.header.content-type"] == ("text/plain; charset=utf-8",)
    assert not any("x-other" in key for key in first)
    assert second["http.request.header.authorization"] == ("Bearer s3cret",)


@pytest.mark.asyncio
async def test_traceresponse_and_server_timing_headers_carry_the_trace() -> None:
    """Opt-in response headers name the server span's trace."""
    with capture() as cap:
        app = ObservabilityMiddleware(starlette_app(), traceresponse=True, server_timing=True)
        response = await _get(app, "/items/1", headers={"traceparent": TRACEPARENT})
        span = cap.spans[0]
    expected = f"00-{PARENT_TRACE}-{span.context.span_id:016x}-01"
    assert response.headers["traceresponse"] == expected
    assert f'traceparent;desc="{expected}"' in response.headers["server-timing"]


@pytest.mark.asyncio
async def test_unknown_methods_become_other() -> None:
    """A non-standard method is _OTHER on the span and the metric, HTTP in the span name."""
    with capture() as cap:
        await _get(ObservabilityMiddleware(starlette_app()), "/items/1", method="PURGE")
        span = cap.spans[0]
    attributes = dict(span.attributes or {})
    assert span.name == "HTTP /items/{item_id}"
    assert attributes["http.request.method"] == "_OTHER"
    assert attributes["http.request.method_original"] == "PURGE"


@pytest.mark.asyncio
async def test_user_route_resolver_wins_and_its_failures_are_harmless() -> None:
    """A route callback names the route; one that raises leaves the request untouched."""

    async def raw(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"raw"})

    def broken(scope: Any) -> str:
        raise KeyError("nope")

    with capture() as cap:
        named = ObservabilityMiddleware(raw, route_resolver=lambda s: "/things/{id}")
        await _get(named, "/things/9")
        response = await _get(ObservabilityMiddleware(raw, route_resolver=broken), "/x")
        names = [s.name for s in cap.spans]
    assert response.text == "raw"
    assert names == ["GET /things/{id}", "GET"]


def test_fastapi_builtin_telemetry_needs_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    """Wrapping a FastAPI app whose own telemetry is on says nothing: FastAPI adopts our
    span (tests/test_fastapi_telemetry.py; the warning is only the fallback's)."""
    pytest.importorskip("fastapi.telemetry", reason="FastAPI before 0.165 has no telemetry")
    with caplog.at_level("WARNING", logger="unified_obs"):
        ObservabilityMiddleware(FastAPI())
    assert not [r for r in caplog.records if "built-in telemetry" in r.getMessage()]


@pytest.mark.asyncio
async def test_a_large_upload_is_one_span_and_body_sizes_are_measured() -> None:
    """A 5 MB POST read in chunks makes one span; body_size_metrics records both sizes."""

    async def upload(request: Request) -> Response:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return PlainTextResponse(str(size))

    app = ObservabilityMiddleware(
        Starlette(routes=[Route("/upload", upload, methods=["POST"])]), body_size_metrics=True
    )
    labels = {
        "http.request.method": "POST",
        "http.route": "/upload",
        "http.response.status_code": "200",
    }
    with capture() as cap:
        response = await _get(app, "/upload", method="POST", content=b"x" * 5_000_000)
        spans = list(cap.spans)
        requests = cap.metric("http.server.request.body.size", **labels)
        responses = cap.metric("http.server.response.body.size", **labels)
    assert response.text == "5000000"
    assert [s.name for s in spans] == ["POST /upload"]
    assert requests == 1
    assert responses == 1


async def _drive(app: Any, send: Any) -> None:
    """One GET through ``app`` with ``send`` as the server's send."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    await app(scope, receive, send)


def _seen_by_server(seen: list[tuple[str, Any, bool]]) -> Any:
    """A server ``send`` noting, per message, the bound request id and whether a span is
    current."""

    async def send(message: dict[str, Any]) -> None:
        current = trace.get_current_span().get_span_context().is_valid
        seen.append((message["type"], obs.bound_fields().get("request_id"), current))

    return send


@pytest.mark.asyncio
async def test_a_response_sent_from_a_task_the_app_started_is_recorded() -> None:
    """An app that sends its response from a task of its own (a copy of the request's
    context) gets the same span, metrics and access line, and no error."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        async def respond() -> None:
            await send({"type": "http.response.start", "status": 201, "headers": []})
            await send({"type": "http.response.body", "body": b"made"})

        await asyncio.create_task(respond())

    seen: list[tuple[str, Any, bool]] = []
    with capture() as cap:
        await _drive(ObservabilityMiddleware(app), _seen_by_server(seen))
    line = _access(cap)[0]
    assert (line["status"], line["bytes"], len(line["request_id"])) == (201, 4, 32)
    assert [kind for kind, _, _ in seen] == ["http.response.start", "http.response.body"]
    assert dict(cap.span("GET").attributes or {})["http.response.status_code"] == 201
