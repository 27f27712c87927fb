"""Conformance of HTTP, websocket and decorator telemetry with semantic conventions v1.44.0.

The HTTP half of ``test_semconv_conformance``: real requests to a real uvicorn (ASGI,
Starlette, a websocket session) and a real wsgiref server (WSGI, Flask) in this process,
plus a decorated function, with every signal exported over OTLP/HTTP to a real receiver
and ``/metrics`` scraped in both formats; the tables come from ``http/http-spans.md``,
``http/http-metrics.md``, ``general/recording-errors.md`` and ``code`` attributes.
"""

from __future__ import annotations

import functools
import socket
import threading
import time
import wsgiref.simple_server
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

import flask
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

import unified_obs as obs
from tests.otlp_receiver import attributes, otlp_receiver
from tests.served import serving
from tests.test_semconv_conformance import (
    CLIENT,
    ERROR,
    OPENMETRICS,
    SEMCONV_BUCKETS,
    SERVER,
    MetricRow,
    Observed,
    SpanRow,
    _families,
    _scoped,
    _types,
)
from tests.test_servers import _websocket_echo
from unified_obs import asgi, wsgi
from unified_obs._semconv import SCHEMA_URL, library_version
from unified_obs.metrics._names import prom_label

INTERNAL: Final = 1
_VERSION: Final = library_version()
_HTTP: Final = {
    "http.request.method": str,
    "url.path": str,
    "url.scheme": str,
    "http.response.status_code": int,
    "network.protocol.version": str,
    "server.address": str,
    "server.port": int,
    "client.address": str,
    "user_agent.original": str,
}
_ROUTED: Final = {**_HTTP, "http.route": str}
_NEVER: Final = frozenset({"exception.escaped", "http.method", "http.status_code", "http.url"})


def _http_row(
    case: str, framework: str, name: str, where: Mapping[str, object], **kw: Any
) -> SpanRow:
    scope = (f"unified_obs.{framework}", _VERSION, SCHEMA_URL)
    return SpanRow(case, SERVER, name, where, scope=scope, **kw)


_OK: Final = _NEVER | {"error.type"}
_UNROUTED: Final = _NEVER | {"http.route", "error.type"}
_FAILED: Final = {**_ROUTED, "error.type": str}
_OTHER: Final = {**_HTTP, "http.request.method_original": str}
_WEBSOCKET: Final = {"url.path": str, "url.scheme": str, "http.route": str,
                     "websocket.close.code": int}  # fmt: skip
_CODE: Final = {"code.function.name": str, "code.file.path": str, "code.line.number": int}
_ASGI_ROUTE, _WSGI_ROUTE = "GET /items/{item_id}", "GET /items/<item_id>"
_HTTPS: Final = {"url.path": "/items/3", "url.scheme": "https"}

SPANS: Final = [
    _http_row("asgi routed", "asgi", _ASGI_ROUTE, {"url.path": "/items/1"}, required=_ROUTED,
              absent=_OK),
    _http_row("asgi unmatched has no route", "asgi", "GET", {"url.path": "/nothing"},
              required=_HTTP, absent=_UNROUTED),
    _http_row("asgi exception", "asgi", "GET /boom", {"url.path": "/boom"}, required=_FAILED,
              absent=_NEVER, status=ERROR),
    _http_row("asgi X-Forwarded-Proto", "asgi", _ASGI_ROUTE, _HTTPS, required=_ROUTED,
              absent=_NEVER),
    _http_row("wsgi routed", "wsgi", _WSGI_ROUTE, {"url.path": "/items/1"}, required=_ROUTED,
              absent=_OK),
    _http_row("wsgi unmatched has no route", "wsgi", "GET", {"url.path": "/nothing"},
              required=_HTTP, absent=_UNROUTED),
    _http_row("wsgi unknown method", "wsgi", "HTTP", {"http.request.method": "_OTHER"},
              required=_OTHER, absent=_NEVER),
    _http_row("wsgi X-Forwarded-Proto", "wsgi", _WSGI_ROUTE, _HTTPS, required=_ROUTED,
              absent=_NEVER),
    _http_row("websocket session", "asgi", "WEBSOCKET /ws", {"url.path": "/ws"},
              required=_WEBSOCKET, absent=_OK),
    SpanRow(
        "outbound httpx call",
        CLIENT,
        "GET",
        {"http.request.method": "GET", "http.response.status_code": 200},
        {"http.request.method": str, "url.full": str, "server.address": str, "server.port": int,
         "http.response.status_code": int},
        _OK,
        scope=("unified_obs.outbound", _VERSION, SCHEMA_URL),
    ),
    SpanRow(
        "decorated function that raised",
        INTERNAL,
        "work",
        {"code.function.name": "tests.test_semconv_conformance_http.work"},
        {**_CODE, "error.type": str},
        _NEVER,
        ERROR,
        ("unified_obs.decorators", _VERSION, SCHEMA_URL),
    ),
]  # fmt: skip

METRICS: Final = [
    MetricRow(
        "http.server.request.duration",
        "histogram",
        "s",
        {
            "http.request.method": str,
            "url.scheme": str,
            "http.response.status_code": int,
            "network.protocol.version": str,
        },
        {"http.route": str, "error.type": str},
        SEMCONV_BUCKETS,
        prom_name="http_server_request_duration_seconds",
        prom_type="histogram",
        prom_unit="seconds",
    ),
    MetricRow(
        "http.server.active_requests",
        "sum",
        "{request}",
        {"http.request.method": str, "url.scheme": str},
        prom_name="http_server_active_requests",
        prom_type="gauge",
    ),
    MetricRow(
        "websocket.server.connection.duration",
        "histogram",
        "s",
        {"http.route": str, "websocket.close.code": int},
        prom_name="websocket_server_connection_duration_seconds",
        prom_type="histogram",
        prom_unit="seconds",
    ),
]

# --- the scenario ------------------------------------------------------------------------


async def _item(request: Request) -> Response:
    return PlainTextResponse("item")


async def _boom(request: Request) -> Response:
    raise RuntimeError("boom")


async def _echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text())
    await websocket.close()


def _starlette() -> Any:
    routes = [Route("/items/{item_id}", _item), Route("/boom", _boom), WebSocketRoute("/ws", _echo)]
    return asgi.ObservabilityMiddleware(Starlette(routes=routes))


def _flask() -> Any:
    app = flask.Flask("conformance")

    @app.route("/items/<item_id>")
    def item(item_id: str) -> str:
        return "item"

    return wsgi.ObservabilityMiddleware(app)


@contextmanager
def _uvicorn(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn in a thread on 127.0.0.1 (port chosen now); uvicorn's own
    proxy-header handling is off so that the middleware's is what is tested."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_config=None, lifespan="off", ws="wsproto", proxy_headers=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextmanager
def _wsgiref(app: Any) -> Iterator[str]:
    """``app`` served by the standard library's WSGI server in a thread."""

    class Quiet(wsgiref.simple_server.WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            """No stderr lines."""

    server = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=Quiet)
    with serving(server) as url:
        yield url


def _requests(url: str) -> None:
    with httpx.Client(base_url=url) as client:
        client.get("/items/1?q=a%20b&flag")
        client.get("/nothing")
        client.get("/boom")
        client.request("FOO", "/items/2")
        client.get("/items/3", headers={"X-Forwarded-Proto": "https"})


@obs.traced
def work() -> None:
    """A decorated function that fails."""
    raise ValueError("no")


@functools.cache
def observed() -> Observed:
    """Run the HTTP scenario once; every test reads the same result."""
    with otlp_receiver() as (endpoint, received):
        obs.setup(service_name="conformance-http", environ={}, otlp_endpoint=endpoint)
        with _uvicorn(_starlette()) as url:
            _requests(url)
            assert _websocket_echo(url, "hi")[0] == "hi"
        with _wsgiref(_flask()) as url:
            _requests(url)
        with pytest.raises(ValueError, match="no"):
            work()
        scrapes = {"text": _families(None), "openmetrics": _families(OPENMETRICS)}
        assert obs.shutdown(timeout=10).ok
    return Observed(
        _scoped(received, "spans", "spans"),
        _scoped(received, "metrics", "metrics"),
        [],
        {},
        scrapes,
    )


# --- the checks --------------------------------------------------------------------------


@pytest.mark.parametrize("row", SPANS, ids=lambda row: row.case)
def test_span_matches_the_convention(row: SpanRow) -> None:
    """Each HTTP, websocket and decorator span arrives with its kind, name, scope (version,
    schema URL), the required attributes in their types, no deprecated or empty ones, its
    status, and exception events without ``exception.escaped``."""
    candidates = [
        (scope, span)
        for scope, span in observed().spans
        if span.kind == row.kind
        and row.where.items() <= attributes(span.attributes).items()
        and scope[0] == row.scope[0]
    ]
    assert candidates, f"no span for {row.case}"
    for scope, span in candidates:
        found = attributes(span.attributes)
        assert (span.name, scope) == (row.name, row.scope)
        assert _types(found, row.required) == {}
        assert sorted(row.absent & found.keys()) == []
        assert span.status.code == row.status
        for event in span.events:
            assert "exception.escaped" not in attributes(event.attributes)


@pytest.mark.parametrize("row", METRICS, ids=lambda row: row.name)
def test_otlp_metric_matches_the_convention(row: MetricRow) -> None:
    """Each HTTP metric over OTLP: kind, unit, buckets, attribute types; nothing empty
    (an unmatched request has no ``http.route``, a success no ``error.type``)."""
    found = [(scope, m) for scope, m in observed().metrics if m.name == row.name]
    assert found, f"no metric {row.name}"
    scope, metric = found[-1]
    assert scope == row.scope
    assert (metric.WhichOneof("data"), metric.unit) == (row.kind, row.unit)
    points = list(getattr(metric, row.kind).data_points)
    assert points
    for point in points:
        values = attributes(point.attributes)
        assert _types(values, row.required) == {}
        extra = {k: v for k, v in values.items() if k not in row.required}
        assert _types(extra, {k: row.optional.get(k, type(None)) for k in extra}) == {}
        assert all(value != "" and value != "<unmatched>" for value in values.values())
        if row.buckets is not None:
            assert list(point.explicit_bounds) == row.buckets


@pytest.mark.parametrize("exposition", ["text", "openmetrics"])
@pytest.mark.parametrize("row", METRICS, ids=lambda row: row.name)
def test_prometheus_family_matches_the_translation(row: MetricRow, exposition: str) -> None:
    """The same metrics on ``/metrics``: name, type, unit, translated labels, our scope."""
    family = observed().scrapes[exposition][row.prom_name]
    assert family.type == row.prom_type
    if exposition == "openmetrics":
        assert family.unit == row.prom_unit
    labels = {prom_label(key) for key in row.required} | {"otel_scope_name", "otel_scope_version"}
    samples = [s for s in family.samples if not s.name.endswith(("_bucket", "_created"))]
    assert samples
    for sample in samples:
        assert labels <= sample.labels.keys()
        assert "<unmatched>" not in sample.labels.values()
