"""/metrics: content negotiation, gzip, promtool, parser round-trips, exemplars, apps."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import subprocess
import wsgiref.util
import wsgiref.validate
from collections import Counter as Tally
from typing import Any

import pytest
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.parser import text_string_to_metric_families as text_families

import unified_obs as obs
from unified_obs import metrics
from unified_obs._semconv import library_version


def parse_om(text: str) -> list[Any]:
    """Strict OpenMetrics parse."""
    return list(text_string_to_metric_families(text))  # type: ignore[no-untyped-call]


def parse_text(text: str) -> list[Any]:
    """Prometheus text format parse."""
    return list(text_families(text))


OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
PROMTOOL = shutil.which("promtool")
SCOPE = f'otel_scope_name="unified_obs",otel_scope_version="{library_version()}"'
"""The labels of the library's own scope, on every sample of its instruments."""
DELIBERATE_LINT = 'lib_duration_milliseconds use base unit "seconds" instead of "milliseconds"'
"""promtool wants base units; the specification keeps an OpenTelemetry-API metric's own
unit (``ms``) so that a scrape and a Collector's translation agree (see docs/metrics.md)."""


def unscoped(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """Sorted labels without the scope labels every sample carries."""
    return tuple(sorted((k, v) for k, v in labels.items() if not k.startswith("otel_scope_")))


def _record_everything() -> tuple[str, str]:
    """Every kind of instrument, awkward label values, and one sampled span's exemplar."""
    obs.setup(service_name="expo", environ={})
    requests = obs.counter("http.requests", "Requests", labels=("route", "note"))
    latency = obs.histogram("http.server.request.duration", "Latency", unit="s", labels=("route",))
    obs.gauge("queue.depth", "Depth", labels=("queue",)).labels("a").set(3)
    obs.up_down_counter("jobs.active", "Active jobs").inc()
    for note in ('quote " here', "back\\slash", "new\nline", "ünïcode", ""):
        requests.labels("/r", note).inc()
    meter = otel_metrics.get_meter("third.party")  # OTel-API metrics share the output
    meter.create_counter("lib.calls", unit="{call}").add(2, {"peer.service": "db"})
    meter.create_histogram("lib.duration", unit="ms").record(12.5)
    meter.create_up_down_counter("lib.connections").add(3)
    with trace.get_tracer("t").start_as_current_span("req") as span:
        latency.labels("/orders/{id}").observe(0.03)
        ctx = span.get_span_context()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def _promtool(body: bytes) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None, "promtool missing: install the Debian package 'prometheus'"
    return subprocess.run(
        [PROMTOOL, "check", "metrics"],
        input=body.decode(),
        capture_output=True,
        text=True,
        timeout=30,
    )


def _no_duplicates(families: list[Any]) -> None:
    """promtool misses duplicate series; count (name, labels) pairs ourselves."""
    seen = Tally((s.name, tuple(sorted(s.labels.items()))) for f in families for s in f.samples)
    assert [key for key, n in seen.items() if n > 1] == []


def test_text_format_passes_promtool_and_round_trips() -> None:
    """Text 0.0.4 output is lint-clean for promtool and parses back to the recorded values."""
    _record_everything()
    status, headers, body = metrics.render(None, None)
    assert status == 200
    assert dict(headers)["Content-Type"].startswith("text/plain; version=0.0.4")
    result = _promtool(body)
    assert result.stderr.splitlines() == [DELIBERATE_LINT], result.stdout + result.stderr
    families = list(parse_text(body.decode()))
    _no_duplicates(families)
    samples = {(s.name, unscoped(s.labels)): s.value for f in families for s in f.samples}
    assert samples[("http_requests_total", (("note", 'quote " here'), ("route", "/r")))] == 1.0
    assert samples[("http_requests_total", (("note", "new\nline"), ("route", "/r")))] == 1.0
    assert samples[("queue_depth", (("queue", "a"),))] == 3.0
    assert samples[("jobs_active", ())] == 1.0
    assert samples[("lib_calls_total", (("peer_service", "db"),))] == 2.0
    assert samples[("lib_duration_milliseconds_bucket", (("le", "25.0"),))] == 1.0
    assert samples[("lib_duration_milliseconds_sum", ())] == 12.5
    assert samples[("lib_connections", ())] == 3.0
    assert "process_resident_memory_bytes" in {f.name for f in families}


def test_openmetrics_carries_exemplar_and_round_trips() -> None:
    """OpenMetrics output ends with # EOF, parses strictly, and the bucket that took the
    observation carries the current trace id as an exemplar."""
    trace_id, span_id = _record_everything()
    status, headers, body = metrics.render(OPENMETRICS, None)
    assert status == 200
    assert dict(headers)["Content-Type"].startswith("application/openmetrics-text")
    text = body.decode()
    assert text.endswith("# EOF\n")
    families = list(parse_om(text))
    _no_duplicates(families)
    latency = next(f for f in families if f.name == "http_server_request_duration_seconds")
    assert latency.unit == "seconds"
    exemplars = [s.exemplar for s in latency.samples if s.exemplar is not None]
    assert [e.labels for e in exemplars] == [{"trace_id": trace_id, "span_id": span_id}]
    bucket = next(s for s in latency.samples if s.exemplar is not None)
    assert bucket.labels["le"] == "0.05"


def test_openmetrics_content_passes_promtool() -> None:
    """promtool (2.42) reads only the text format, so the OpenMetrics families, parsed by
    the strict OpenMetrics parser above, are re-encoded as text and linted by promtool."""
    from prometheus_client import generate_latest
    from prometheus_client.registry import Collector

    _record_everything()
    families = list(parse_om(metrics.render(OPENMETRICS, None)[2].decode()))

    class Parsed(Collector):
        def collect(self) -> list[Any]:
            return families

    result = _promtool(generate_latest(Parsed()))
    assert result.stderr.splitlines() == [DELIBERATE_LINT], result.stdout + result.stderr


@pytest.mark.parametrize("accept", [None, OPENMETRICS])
def test_gzip_when_accepted(accept: str | None) -> None:
    """Accept-Encoding: gzip compresses the body and says so; the content is the same."""
    _record_everything()
    _, plain_headers, plain = metrics.render(accept, None)
    _, headers, body = metrics.render(accept, "br;q=1.0, gzip;q=0.8")
    assert dict(headers)["Content-Encoding"] == "gzip"
    assert "Content-Encoding" not in dict(plain_headers)
    line = f"\njobs_active{{{SCOPE}}} 1.0\n".encode()
    assert line in gzip.decompress(body)
    assert line in plain


def test_render_never_raises_on_a_broken_collector() -> None:
    """A collector that raises gives a 500, not an exception in the server."""
    from prometheus_client import REGISTRY

    class Broken:
        def collect(self) -> list[Any]:
            raise RuntimeError("boom")

        def describe(self) -> list[Any]:
            return []

    broken = Broken()
    REGISTRY.register(broken)
    try:
        status, _, body = metrics.render(None, None)
    finally:
        REGISTRY.unregister(broken)
    assert status == 500
    assert b"failed" in body


def test_wsgi_app_serves_and_negotiates() -> None:
    """The WSGI app passes wsgiref's validator, negotiates and refuses POST."""
    obs.counter("wsgi.hits").inc()
    app: Any = wsgiref.validate.validator(metrics.make_wsgi_app())

    def call(method: str, accept: str = "") -> tuple[str, dict[str, str], bytes]:
        seen: dict[str, Any] = {}
        environ: dict[str, Any] = {"REQUEST_METHOD": method, "QUERY_STRING": ""}
        if accept:
            environ["HTTP_ACCEPT"] = accept
        wsgiref.util.setup_testing_defaults(environ)

        def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
            seen.update(status=status, headers=dict(headers))
            return lambda data: None

        chunks = app(environ, start_response)
        body = b"".join(chunks)
        chunks.close()
        return seen["status"], seen["headers"], body

    status, headers, body = call("GET", OPENMETRICS)
    assert status == "200 OK"
    assert f"wsgi_hits_total{{{SCOPE}}} 1.0".encode() in body
    assert headers["Content-Length"] == str(len(body))
    assert call("HEAD")[2] == b""
    assert call("POST")[0].startswith("405")


def test_asgi_app_serves_with_gzip() -> None:
    """The ASGI app answers GET with gzip when asked and handles lifespan."""
    obs.counter("asgi.hits").inc()
    app: Any = metrics.make_asgi_app()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "headers": [(b"accept-encoding", b"gzip")]}
    asyncio.run(app(scope, receive, send))
    headers = dict(sent[0]["headers"])
    assert sent[0]["status"] == 200
    assert headers[b"content-encoding"] == b"gzip"
    assert f"asgi_hits_total{{{SCOPE}}} 1.0".encode() in gzip.decompress(sent[1]["body"])

    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def lifespan_receive() -> dict[str, Any]:
        return next(messages)

    sent.clear()
    asyncio.run(app({"type": "lifespan"}, lifespan_receive, send))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
            "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            "application/openmetrics-text; version=1.0.0",
        ),
        ("text/plain;version=0.0.4;q=1,*/*;q=0.1", "text/plain; version=0.0.4"),
        ("*/*", "text/plain; version=0.0.4"),
        ("", "text/plain; version=0.0.4"),
    ],
)
def test_accept_headers_prometheus_sends(accept: str, expected: str) -> None:
    """The Accept header Prometheus sends with exemplar storage gets OpenMetrics; anything
    else gets the classic text format."""
    obs.counter("negotiated").inc()
    _, headers, body = metrics.render(accept, None)
    assert dict(headers)["Content-Type"].startswith(expected)
    assert body.endswith(b"# EOF\n") == expected.startswith("application/openmetrics-text")
