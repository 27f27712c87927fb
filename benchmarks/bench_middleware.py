"""HTTP middleware overhead, in-process: raw ASGI/WSGI apps bare, with our middleware and
with opentelemetry-instrumentation-asgi/-wsgi, measured side by side in the same run.

Every instrumented case records a sampled span through a batch processor into a dropping
exporter and records metrics: ours through the ``LeanBatchSpanProcessor`` ``setup()``
installs for an exporter, OpenTelemetry's through the SDK's ``BatchSpanProcessor``; ours
also writes its access log line (JSON, to a null sink). Run: ``python -m benchmarks
--only middleware`` or, for the "added µs" table the issue's budgets are stated in,
``python -m benchmarks.bench_middleware``.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware as OtelWsgiMiddleware
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

import unified_obs
from benchmarks._harness import Group, run_group
from unified_obs import asgi, wsgi
from unified_obs.testing import reset
from unified_obs.tracing import LeanBatchSpanProcessor

SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/items/42",
    "raw_path": b"/items/42",
    "query_string": b"",
    "root_path": "",
    "headers": [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"wrk"),
        (b"accept", b"*/*"),
    ],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}
ENVIRON: dict[str, Any] = {
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "",
    "PATH_INFO": "/items/42",
    "QUERY_STRING": "",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "8000",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "HTTP_HOST": "127.0.0.1:8000",
    "HTTP_USER_AGENT": "wrk",
    "HTTP_ACCEPT": "*/*",
    "wsgi.url_scheme": "http",
    "wsgi.input": io.BytesIO(),
    "wsgi.errors": sys.stderr,
}
_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain")],
}
_BODY = {"type": "http.response.body", "body": b"ok"}


async def raw_asgi(scope: Any, receive: Any, send: Any) -> None:
    """The smallest useful ASGI app: 200 "ok"."""
    await send(_START)
    await send(_BODY)


def raw_wsgi(environ: Any, start_response: Any) -> Iterable[bytes]:
    """The smallest useful WSGI app: 200 "ok"."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    return None


def drive_asgi(app: Any) -> Callable[[], None]:
    """One request per call: the coroutine never suspends, so ``send(None)`` completes it."""

    def once() -> None:
        coro = app(dict(SCOPE), _receive, _send)
        try:
            coro.send(None)
        except StopIteration:
            return
        raise RuntimeError("the app suspended")

    return once


def _start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
    return None


def drive_wsgi(app: Any) -> Callable[[], None]:
    """One request per call: iterate the body and close it, as a server does."""

    def once() -> None:
        body = app(dict(ENVIRON), _start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()

    return once


def floor_asgi(app: Any) -> Any:
    """Only what any middleware with these signals must pay: the SDK span with the same
    attributes, and the same access log line through the same pipeline (no metrics, no
    request id, no context) -- the floor the budget is measured against."""
    tracer = trace.get_tracer("floor")
    log = unified_obs.get_logger("unified_obs.access")

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        span = tracer.start_span("GET", kind=SpanKind.SERVER, attributes=_floor_attributes())
        await app(scope, receive, send)
        span.set_attributes({"http.response.status_code": 200, "http.route": "/items/{id}"})
        span.update_name("GET /items/{id}")
        span.end()
        log.info(
            "http.request",
            method="GET",
            path="/items/42",
            route="/items/{id}",
            status=200,
            duration_ms=0.1,
            bytes=2,
            client="127.0.0.1",
        )

    return middleware


def floor_wsgi(app: Any) -> Any:
    """:func:`floor_asgi` for WSGI."""
    tracer = trace.get_tracer("floor")
    log = unified_obs.get_logger("unified_obs.access")

    def middleware(environ: Any, start_response: Any) -> Iterable[bytes]:
        span = tracer.start_span("GET", kind=SpanKind.SERVER, attributes=_floor_attributes())
        body = list(app(environ, start_response))
        span.set_attributes({"http.response.status_code": 200, "http.route": "/items/{id}"})
        span.update_name("GET /items/{id}")
        span.end()
        log.info(
            "http.request",
            method="GET",
            path="/items/42",
            route="/items/{id}",
            status=200,
            duration_ms=0.1,
            bytes=2,
            client="127.0.0.1",
        )
        return body

    return middleware


def _floor_attributes() -> dict[str, Any]:
    return {
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": "/items/42",
        "network.protocol.version": "1.1",
        "client.address": "127.0.0.1",
        "user_agent.original": "wrk",
    }


class _DropSpans(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class _DropMetrics(MetricExporter):
    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kw: Any) -> Any:
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


class _Env:
    """Our setup (batch + drop spans, JSON logs to a null sink) and the OTel anchors' own
    explicit SDK providers (batch + drop spans, SDK metrics with a periodic reader)."""

    def __init__(self) -> None:
        self.null = null_stream()
        self.stdout = sys.stdout

    def start(self) -> None:
        reset()
        tel = unified_obs.setup(
            service_name="bench",
            traces_exporter="none",
            metrics_exporter="none",
            logs_exporter="none",
            log_format="json",
            log_stdlib=False,
            handle_signals=False,
        )
        assert tel.tracer_provider is not None
        tel.tracer_provider.add_span_processor(LeanBatchSpanProcessor(_DropSpans()))
        self.otel_tracer = TracerProvider()
        self.otel_tracer.add_span_processor(BatchSpanProcessor(_DropSpans()))
        reader = PeriodicExportingMetricReader(_DropMetrics(), export_interval_millis=60_000)
        self.otel_meter = MeterProvider(metric_readers=[reader])

    def mute(self) -> None:
        """Access log lines go to the null stream while a group is measured (tables still
        print)."""
        sys.stdout = self.null

    def unmute(self) -> None:
        sys.stdout = self.stdout

    def stop(self) -> None:
        self.unmute()
        self.otel_tracer.shutdown()
        self.otel_meter.shutdown()
        reset()


class _NullRaw(io.RawIOBase):
    """A raw stream that accepts and forgets every write, without a system call."""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(data)


def null_stream() -> io.TextIOWrapper:
    """A text stream to nowhere that still encodes and buffers like ``sys.stdout``.

    Not ``/dev/null``: a write system call every few lines releases and retakes the GIL
    so quickly that the batch span processor's worker thread can never take it (CPython
    asks a holder to drop the GIL only after a whole switch interval without a switch).
    Its queue then fills and every span is dropped with a warning, which no server sees:
    a server also waits for its sockets, which lets the worker run.
    """
    return io.TextIOWrapper(io.BufferedWriter(_NullRaw()), encoding="utf-8")


def groups() -> list[Group]:
    """ASGI and WSGI: bare, ours, OpenTelemetry contrib."""
    env = _Env()
    env.start()
    asgi_cases = {
        "raw bare": drive_asgi(raw_asgi),
        "raw + unified_obs": drive_asgi(asgi.ObservabilityMiddleware(raw_asgi)),
        "raw + floor (SDK span + access log line only)": drive_asgi(floor_asgi(raw_asgi)),
        "raw + otel-asgi (send/receive spans excluded)": drive_asgi(
            OpenTelemetryMiddleware(
                raw_asgi,
                tracer_provider=env.otel_tracer,
                meter_provider=env.otel_meter,
                exclude_spans=["receive", "send"],
            )
        ),
    }
    wsgi_cases = {
        "wsgi bare": drive_wsgi(raw_wsgi),
        "wsgi + unified_obs": drive_wsgi(wsgi.ObservabilityMiddleware(raw_wsgi)),
        "wsgi + floor (SDK span + access log line only)": drive_wsgi(floor_wsgi(raw_wsgi)),
        "wsgi + otel-wsgi": drive_wsgi(
            OtelWsgiMiddleware(
                raw_wsgi, tracer_provider=env.otel_tracer, meter_provider=env.otel_meter
            )
        ),
    }
    notes = "span sampled (batch processor, dropping exporter), metrics on, access log to null"
    otel_asgi = "raw + otel-asgi (send/receive spans excluded)"
    return [
        Group(
            "middleware/asgi (per request)",
            asgi_cases,
            anchor="raw bare",
            budgets={"raw + unified_obs": 0.3},
            budget_anchors={"raw + unified_obs": otel_asgi},
            notes=notes + "; budget: ours <= 0.3x otel-asgi",
            setup=env.mute,
            teardown=env.unmute,
        ),
        Group(
            "middleware/wsgi (per request)",
            wsgi_cases,
            anchor="wsgi bare",
            budgets={"wsgi + unified_obs": 0.3},
            budget_anchors={"wsgi + unified_obs": "wsgi + otel-wsgi"},
            notes=notes + "; budget: ours <= 0.3x otel-wsgi",
            setup=env.mute,
            teardown=env.stop,
        ),
    ]


def main() -> None:
    """Run both groups and print the added cost per request against the issue's budgets."""
    rows = []
    for group in groups():
        result = run_group(group)
        bare = result.median_ns[group.anchor]
        ours, otel = (n for n in result.median_ns if "unified_obs" in n or "otel" in n)
        added_ours = (result.median_ns[ours] - bare) / 1e3
        added_otel = (result.median_ns[otel] - bare) / 1e3
        rows.append((group.title, added_ours, added_otel))
    print("\n| group | unified_obs adds µs | otel adds µs | ratio | budget |")
    print("|---|---:|---:|---:|---|")
    for (title, ours_us, otel_us), limit in zip(rows, (60, 50), strict=True):
        ratio = ours_us / otel_us
        verdict = "PASS" if ours_us <= limit and ratio <= 0.3 else "FAIL"
        print(
            f"| {title} | {ours_us:.1f} | {otel_us:.1f} | {ratio:.2f} | {verdict} "
            f"(<= {limit} µs, <= 0.3x) |"
        )


if __name__ == "__main__":
    main()
