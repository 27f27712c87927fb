"""Outbound HTTP: httpx (sync and async), requests and aiohttp against a real local server.

Each client sends the trace context of a CLIENT span that follows the stable HTTP
semantic conventions and records ``http.client.request.duration`` once.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import aiohttp
import httpx
import pytest
import requests
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.utils import suppress_http_instrumentation
from opentelemetry.trace import SpanKind, StatusCode

import unified_obs as obs
from tests.served import serving
from unified_obs import metrics, outbound
from unified_obs.outbound._call import describe_url
from unified_obs.testing import Captured, capture


class _Echo(BaseHTTPRequestHandler):
    """Answers ``/status/<code>`` with that code, ``/redirect`` with a 302 to ``/ok``, and
    anything else with 200; every body is the request's headers as JSON."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        """Every method answers the same way."""
        status, extra = 200, {}
        if self.path.startswith("/status/"):
            status = int(self.path.rsplit("/", 1)[1])
        elif self.path == "/redirect":
            status, extra = 302, {"location": "/ok"}
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(status)
        for name, value in {**extra, "content-type": "application/json"}.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """A real HTTP server on a loopback port chosen now; yields its base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    httpd.daemon_threads = True
    with serving(httpd) as url:
        yield url


def _httpx_sync(url: str) -> tuple[int, dict[str, str]]:
    with httpx.Client() as client:
        response = client.get(url)
    return response.status_code, response.json()


def _httpx_async(url: str) -> tuple[int, dict[str, str]]:
    async def go() -> tuple[int, dict[str, str]]:
        async with httpx.AsyncClient() as client:
            response = await client.get(url)
        return response.status_code, response.json()

    return asyncio.run(go())


def _requests(url: str) -> tuple[int, dict[str, str]]:
    response = requests.get(url, timeout=5)
    return response.status_code, response.json()


def _aiohttp(url: str) -> tuple[int, dict[str, str]]:
    async def go() -> tuple[int, dict[str, str]]:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status, await response.json()

    return asyncio.run(go())


Client = Callable[[str], tuple[int, dict[str, str]]]
CLIENTS: dict[str, Client] = {
    "httpx": _httpx_sync,
    "httpx-async": _httpx_async,
    "requests": _requests,
    "aiohttp": _aiohttp,
}
_each_client = pytest.mark.parametrize("client", list(CLIENTS.values()), ids=list(CLIENTS))


def _count(*labels: Any) -> float | None:
    """How many ``http.client.request.duration`` observations one label set holds."""
    (duration,) = [i for i in metrics.instruments() if i.name == "http.client.request.duration"]
    return duration.value(*labels)


def _client_spans(cap: Captured) -> list[Any]:
    return [s for s in cap.spans if s.kind is SpanKind.CLIENT]


@_each_client
def test_a_call_inside_a_span_sends_its_trace_and_makes_one_client_span(
    server: str, client: Client
) -> None:
    """Inside a span, the request carries traceparent (the CLIENT span as parent), tracestate
    and baggage; the CLIENT span is a child of the caller's span with the stable attributes."""
    with capture() as cap:
        token = otel_context.attach(baggage.set_baggage("tenant", "acme"))
        try:
            with obs.span("checkout"):
                status, seen = client(f"{server}/orders?id=7")
        finally:
            otel_context.detach(token)
        (span,) = _client_spans(cap)
        parent = cap.span("checkout")
        port = int(server.rsplit(":", 1)[1])
        count = _count("GET", "127.0.0.1", port, "200", "")
    assert status == 200
    context = span.get_span_context()
    assert seen["traceparent"] == (
        f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    )
    assert seen["baggage"] == "tenant=acme"
    assert span.parent is not None
    assert span.parent.span_id == parent.context.span_id
    assert span.name == "GET"
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "server.port": port,
        "url.full": f"{server}/orders?id=7",
        "http.response.status_code": 200,
    }
    assert span.status.status_code is StatusCode.UNSET
    assert count == 1


@_each_client
def test_an_error_status_marks_the_span_and_the_metric(server: str, client: Client) -> None:
    """A 4xx or 5xx answer is an error for a client: ``error.type`` is the status code and
    the span status is Error; the caller still gets the response."""
    with capture() as cap:
        status, _ = client(f"{server}/status/503")
        (span,) = _client_spans(cap)
        count = _count("GET", "127.0.0.1", int(server.rsplit(":", 1)[1]), "503", "503")
    assert status == 503
    assert (span.attributes or {})["error.type"] == "503"
    assert span.status.status_code is StatusCode.ERROR
    assert count == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@_each_client
def test_a_failed_connection_is_recorded_and_raised_unchanged(client: Client) -> None:
    """When the connection fails, the client's own exception reaches the caller and the span
    carries its class as ``error.type``, with no status code."""
    connect_errors = (httpx.ConnectError, requests.ConnectionError, aiohttp.ClientConnectorError)
    with capture() as cap, pytest.raises(connect_errors) as raised:
        client(f"http://127.0.0.1:{_closed_port()}/")
    (span,) = _client_spans(cap)
    attributes = dict(span.attributes or {})
    assert "http.response.status_code" not in attributes
    raised_type = type(raised.value)
    assert attributes["error.type"] == f"{raised_type.__module__}.{raised_type.__qualname__}"
    assert span.status.status_code is StatusCode.ERROR


@_each_client
def test_a_failed_request_writes_no_secret_from_its_url(client: Client) -> None:
    """A client's exception message can carry the URL (requests' does); the span keeps only
    the exception's class, so a sensitive query value never reaches the span."""
    connect_errors = (httpx.ConnectError, requests.ConnectionError, aiohttp.ClientConnectorError)
    with capture() as cap, pytest.raises(connect_errors):
        client(f"http://127.0.0.1:{_closed_port()}/pay?token=hunter2")
    (span,) = _client_spans(cap)
    recorded = repr(dict(span.attributes or {})) + repr([e.attributes for e in span.events])
    assert "hunter2" not in recorded
    assert (span.attributes or {})["url.full"].endswith("/pay?token=%5BREDACTED%5D")


def test_each_redirect_hop_is_its_own_client_span(server: str) -> None:
    """Following a redirect makes one CLIENT span per request sent (302, then 200)."""
    with capture() as cap:
        response = httpx.get(f"{server}/redirect", follow_redirects=True)
        spans = _client_spans(cap)
    assert response.status_code == 200
    codes = [(s.attributes or {})["http.response.status_code"] for s in spans]
    assert codes == [302, 200]


def test_url_full_hides_credentials_and_sensitive_query_values() -> None:
    """``url.full`` never carries a password or a sensitive query value."""
    target = describe_url("https://bob:hunter2@api.example:8443/pay?token=abc&id=3#frag")
    assert target == (
        "api.example",
        8443,
        "https://REDACTED:REDACTED@api.example:8443/pay?token=%5BREDACTED%5D&id=3",
    )
    assert describe_url("http://example.org/a") == ("example.org", 80, "http://example.org/a")
    assert describe_url("https://example.org")[1] == 443


def test_a_configured_redact_key_hides_that_query_value(server: str) -> None:
    """Keys given to ``setup(redact_keys=...)`` are redacted in ``url.full`` too."""
    with capture(redact_keys=("order_ref",)) as cap:
        httpx.get(f"{server}/?order_ref=A-17&page=2")
        (span,) = _client_spans(cap)
    assert (span.attributes or {})["url.full"] == f"{server}/?order_ref=%5BREDACTED%5D&page=2"


def test_outbound_http_false_leaves_clients_alone(server: str) -> None:
    """``setup(outbound_http=False)``: no hook, no header sent, no CLIENT span."""
    with capture(outbound_http=False) as cap:
        with obs.span("work"):
            _, seen = _requests(server)
        assert _client_spans(cap) == []
    assert "traceparent" not in seen
    assert outbound.instrumented() == ()


def test_suppressed_instrumentation_sends_nothing(server: str) -> None:
    """Inside OpenTelemetry's ``suppress_http_instrumentation`` no span is made."""
    with capture() as cap:
        with suppress_http_instrumentation():
            _, seen = _httpx_sync(server)
        assert _client_spans(cap) == []
    assert "traceparent" not in seen


@pytest.mark.parametrize("per_client", [False, True], ids=["global", "instrument_client"])
def test_a_client_contrib_instruments_gets_no_second_span(server: str, per_client: bool) -> None:
    """When OpenTelemetry contrib instruments httpx (globally or one client), contrib's CLIENT
    span is the only one and the request carries one traceparent."""
    instrumentor = HTTPXClientInstrumentor()
    with capture() as cap:
        client = httpx.Client()
        if per_client:
            instrumentor.instrument_client(client)
        else:
            instrumentor.instrument()
        try:
            response = client.get(server)
        finally:
            if per_client:
                instrumentor.uninstrument_client(client)
            else:
                instrumentor.uninstrument()
            client.close()
        spans = _client_spans(cap)
    assert len(spans) == 1
    assert spans[0].instrumentation_scope.name != "unified_obs.outbound"
    assert response.json()["traceparent"].split("-")[2] == f"{spans[0].context.span_id:016x}"


def test_requests_that_contrib_instruments_gets_no_second_span(server: str) -> None:
    """When OpenTelemetry contrib's ``RequestsInstrumentor`` is on, its CLIENT span is the
    only one and the request carries its traceparent."""
    instrumentor = RequestsInstrumentor()
    with capture() as cap:
        instrumentor.instrument()
        try:
            _, seen = _requests(server)
        finally:
            instrumentor.uninstrument()
        spans = _client_spans(cap)
    assert len(spans) == 1
    assert spans[0].instrumentation_scope.name != "unified_obs.outbound"
    assert seen["traceparent"].split("-")[2] == f"{spans[0].context.span_id:016x}"


def test_requests_to_our_own_otlp_endpoint_are_not_observed(server: str) -> None:
    """The exporters' requests to the configured OTLP endpoint make no CLIENT span."""
    with capture(metrics_exporter="otlp", otlp_endpoint=server) as cap:
        requests.post(f"{server}/v1/metrics", data=b"", timeout=5)
        requests.get(f"{server}/other", timeout=5)
        urls = [(s.attributes or {})["url.full"] for s in _client_spans(cap)]
    assert urls == [f"{server}/other"]


def test_outside_any_span_a_request_starts_its_own_trace(server: str) -> None:
    """With no current span the CLIENT span is a root and its context is still sent."""
    with capture() as cap:
        _, seen = _httpx_sync(server)
        (span,) = _client_spans(cap)
    assert span.parent is None
    assert seen["traceparent"].split("-")[1] == f"{span.context.trace_id:032x}"
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_a_library_imported_after_setup_is_hooked_at_its_import(server: str) -> None:
    """``setup()`` does not import aiohttp; importing it later still hooks it."""
    script = textwrap.dedent(
        f"""
        import sys, asyncio
        import unified_obs as obs
        from unified_obs import metrics, outbound
        obs.setup(service_name="t", handle_signals=False)
        assert "aiohttp" not in sys.modules, "setup imported aiohttp"
        import aiohttp
        async def go():
            async with aiohttp.ClientSession() as s, s.get("{server}") as r:
                return await r.json()
        with obs.span("work"):
            seen = asyncio.run(go())
        print(outbound.instrumented(), "traceparent" in seen)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["('aiohttp',)", "True"]


def test_reset_takes_the_hooks_off() -> None:
    """``testing.reset()`` restores the libraries' own methods."""
    original = httpx.HTTPTransport.handle_request
    with capture():
        assert httpx.HTTPTransport.handle_request is not original
        assert "httpx" in outbound.instrumented()
    assert httpx.HTTPTransport.handle_request is original
    assert outbound.instrumented() == ()
