"""FastAPI 0.165+ with its own telemetry on (the default) under our middleware: one SERVER
span and one ``http.server.request.duration`` recording per request, FastAPI's operation
spans under ours, with no configuration."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.telemetry import get_telemetry_data
from opentelemetry.trace import SpanKind

from unified_obs import metrics
from unified_obs._compat import _probes
from unified_obs._compat import fastapi as fastapi_compat
from unified_obs.asgi import ObservabilityMiddleware
from unified_obs.testing import capture


def _app(**telemetry: Any) -> FastAPI:
    api = FastAPI(telemetry=telemetry or None)  # type: ignore[arg-type]

    def page() -> int:
        return 2

    @api.get("/items/{item_id}")
    async def item(item_id: int, page: int = Depends(page)) -> dict[str, Any]:
        return {"id": item_id, "data": get_telemetry_data() is not None}

    return api


async def _get(app: Any, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


def _scrape_lines(name: str) -> list[str]:
    body = metrics.render(None, None)[2].decode()
    return [line for line in body.splitlines() if line.startswith(name + "{")]


@pytest.mark.asyncio
async def test_fastapi_defaults_give_one_server_span_with_operation_spans_under_it() -> None:
    """``ObservabilityMiddleware(FastAPI())``: one SERVER span (ours, named by FastAPI's
    route), FastAPI's dependency, endpoint and serialization spans as its children, and
    FastAPI's ``get_telemetry_data()`` available inside the endpoint."""
    with capture() as cap:
        response = await _get(ObservabilityMiddleware(_app()), "/items/3")
        spans = list(cap.spans)
    assert response.json() == {"id": 3, "data": True}
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    assert [s.name for s in servers] == ["GET /items/{item_id}"]
    assert servers[0].instrumentation_scope is not None
    assert servers[0].instrumentation_scope.name != "fastapi"
    operations = [s for s in spans if s.kind is SpanKind.INTERNAL]
    assert {s.name for s in operations} >= {"fastapi.dependencies", "fastapi.endpoint"}
    assert all(s.parent is not None for s in operations)
    assert {s.parent.span_id for s in operations if s.parent} == {servers[0].context.span_id}


@pytest.mark.asyncio
async def test_fastapi_defaults_record_the_request_duration_once() -> None:
    """Only our ``http.server.request.duration`` reaches ``/metrics``: FastAPI records none
    through the OpenTelemetry meter provider ``setup()`` installs."""
    with capture():
        await _get(ObservabilityMiddleware(_app()), "/items/3")
        counts = _scrape_lines("http_server_request_duration_seconds_count")
    assert len(counts) == 1, counts
    assert counts[0].endswith(" 1.0")
    assert 'otel_scope_name="fastapi"' not in counts[0]


@pytest.mark.asyncio
async def test_fastapi_operation_spans_follow_the_apps_own_setting() -> None:
    """``FastAPI(telemetry={"operation_spans": False})``: our server span only."""
    with capture() as cap:
        await _get(ObservabilityMiddleware(_app(operation_spans=False)), "/items/3")
        names = [s.name for s in cap.spans]
    assert names == ["GET /items/{item_id}"]


@pytest.mark.asyncio
async def test_telemetry_data_is_gone_after_the_request() -> None:
    """As with FastAPI's own telemetry, its per-request data is dropped when the request
    ends (a retained context no longer reaches it)."""
    kept: list[Any] = []
    api = FastAPI()

    @api.get("/")
    async def root() -> str:
        from opentelemetry import context

        kept.append(context.get_current())
        return "ok"

    with capture():
        await _get(ObservabilityMiddleware(api), "/")
    assert get_telemetry_data(kept[0]) is None


def test_a_fastapi_whose_internals_differ_gets_the_warning(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the probe says no (a FastAPI we do not know), wrapping an app whose telemetry
    is on warns once naming ``FastAPI(telemetry=...)``; an app with it off does not."""
    monkeypatch.setitem(_probes._answers, fastapi_compat.REQUEST_TELEMETRY, False)
    with caplog.at_level(logging.WARNING, logger="unified_obs"):
        ObservabilityMiddleware(FastAPI())
        ObservabilityMiddleware(FastAPI(telemetry={"tracing": False, "metrics": False}))
    warned = [r for r in caplog.records if "FastAPI(telemetry=" in r.getMessage()]
    assert len(warned) == 1


def test_the_probe_accepts_the_installed_fastapi() -> None:
    """The installed FastAPI (0.165+) has the internals the adoption relies on."""
    _probes.forget()
    assert _probes.decide(fastapi_compat.REQUEST_TELEMETRY, fastapi_compat._record_works)
