"""The getting-started programs in docs/getting-started/ run as written under their real
servers (uvicorn, gunicorn, grpcio, plain python), each copied to an empty directory: a
request with a W3C ``traceparent`` gives a span at the test's OTLP receiver in that trace,
a JSON log line on stdout carrying the trace id, the duration metric on ``/metrics`` and
passing probes."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.otlp_receiver import Received, otlp_receiver
from tests.served import ROOT, Served, environment, free_port, run_program, serve

pytestmark = pytest.mark.slow

GETTING_STARTED = ROOT / "docs" / "getting-started"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
SERVER_KIND = 2
CLIENT_KIND = 3
STATUS_ERROR = 2
STOPPED = (0, -signal.SIGTERM)
"""Exit statuses after SIGTERM: gunicorn exits 0, uvicorn re-raises the signal, and so
does a plain program once the shutdown sequence ran (lifecycle/_os_signals.py)."""


@dataclass(frozen=True)
class HttpExample:
    """One HTTP getting-started file, the server options its header names, and the
    route its span is named after."""

    file: str
    server: str
    route: str
    options: tuple[str, ...] = ()


HTTP_EXAMPLES = [
    HttpExample("fastapi_app.py", "uvicorn", "/items/{item_id}", ("--no-access-log",)),
    HttpExample("flask_app.py", "gunicorn", "/items/<int:item_id>"),
    HttpExample("django_app.py", "gunicorn", "/items/<int:item_id>"),
]


def _copy(file: str, into: Path) -> Path:
    target = into / file
    shutil.copy(GETTING_STARTED / file, target)
    return target


def _spans(received: Received, kind: int) -> list[Any]:
    return [span for _, span in received.spans() if span.kind == kind]


def _line_in_trace(served: Served, event: str) -> dict[str, Any]:
    found = [line for line in served.json_lines() if line.get("event") == event]
    assert found, f"no {event!r} line in:\n" + served.text()[-3000:]
    assert found[0]["trace_id"] == TRACE_ID
    assert len(found[0]["span_id"]) == 16
    return found[0]


def _check_probes(base: str) -> None:
    for probe in ("/livez", "/readyz", "/startupz", "/healthz"):
        response = httpx.get(base + probe, timeout=5)
        assert response.status_code == 200, (probe, response.text)
        assert response.json() == {"status": "pass"}


@pytest.mark.parametrize("example", HTTP_EXAMPLES, ids=lambda e: e.file)
def test_http_getting_started_program(example: HttpExample, tmp_path: Path) -> None:
    """The FastAPI, Flask and Django programs serve a traced request whose SERVER span,
    named after the route, reaches the collector in the caller's trace; its log line on
    stdout carries that trace id; ``/metrics`` has the duration and the probes pass."""
    _copy(example.file, tmp_path)
    target = example.file.removesuffix(".py") + ":app"
    with otlp_receiver() as (endpoint, received):
        env = environment(endpoint, tmp_path)
        options = example.options
        with serve(example.server, target, cwd=tmp_path, env=env, options=options) as served:
            response = httpx.get(
                served.url + "/items/42", headers={"traceparent": TRACEPARENT}, timeout=5
            )
            assert response.status_code == 200
            assert response.json() == {"id": 42}
            assert response.headers["x-request-id"]
            metrics = httpx.get(served.url + "/metrics", timeout=5).text
            assert "http_server_request_duration_seconds_count{" in metrics
            _check_probes(served.url)
            name = f"GET {example.route}"
            assert received.wait_for(lambda r: any(s.name == name for s in _spans(r, SERVER_KIND)))
            assert served.stop() in STOPPED, served.text()[-3000:]
        (span,) = [s for s in _spans(received, SERVER_KIND) if s.name == name]
        assert span.trace_id.hex() == TRACE_ID
        line = _line_in_trace(served, "item.read")
        assert line["item_id"] == 42
        access = [line for line in served.json_lines() if "/items/42" in str(line.get("event"))]
        access += [line for line in served.json_lines() if line.get("path") == "/items/42"]
        assert len(access) == 1, access  # one access line per request, with the trace id
        assert access[0]["trace_id"] == TRACE_ID
        in_trace = {s.span_id.hex() for _, s in received.spans() if s.trace_id == span.trace_id}
        assert line["span_id"] in in_trace  # the server span, or FastAPI's operation span


def test_fastapi_not_found_is_not_an_error_span(tmp_path: Path) -> None:
    """The FastAPI program's ``HTTPException(404)`` answers 404 and its span is not
    marked as an error: a client error is not the server's failure."""
    _copy("fastapi_app.py", tmp_path)
    with otlp_receiver() as (endpoint, received):
        env = environment(endpoint, tmp_path)
        with serve("uvicorn", "fastapi_app:app", cwd=tmp_path, env=env) as served:
            assert httpx.get(served.url + "/items/0", timeout=5).status_code == 404
            assert received.wait_for(lambda r: bool(_spans(r, SERVER_KIND)))
        (span,) = _spans(received, SERVER_KIND)
    assert span.name == "GET /items/{item_id}"
    assert span.status.code != STATUS_ERROR


def _admin_ready(admin_port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{admin_port}/livez", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_grpc_getting_started_program(tmp_path: Path) -> None:
    """The gRPC program answers a call carrying a ``traceparent`` in its metadata: the
    SERVER span reaches the collector in that trace, the log line carries the trace id,
    gRPC health says SERVING and the admin port serves ``/metrics`` and the probes."""
    script = _copy("grpc_server.py", tmp_path)
    admin_port = free_port()
    with otlp_receiver() as (endpoint, received):
        env = environment(endpoint, tmp_path, ADMIN_PORT=str(admin_port))
        ready = lambda _port: _admin_ready(admin_port)  # noqa: E731
        with run_program(script, cwd=tmp_path, env=env, ready=ready) as served:
            with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
                hello = channel.unary_unary("/demo.Greeter/SayHello")
                answer = hello(b"ada", metadata=[("traceparent", TRACEPARENT)], timeout=5)
                health = health_pb2_grpc.HealthStub(channel)
                status = health.Check(health_pb2.HealthCheckRequest(service="demo.Greeter"))
            assert answer == b"hello ada"
            assert status.status == health_pb2.HealthCheckResponse.SERVING
            admin = f"http://127.0.0.1:{admin_port}"
            assert "rpc_server_call_duration_seconds_count{" in httpx.get(admin + "/metrics").text
            _check_probes(admin)
            assert received.wait_for(lambda r: bool(_spans(r, SERVER_KIND)))
            assert served.stop() in STOPPED, served.text()[-3000:]
        (span,) = _spans(received, SERVER_KIND)
    assert span.name == "demo.Greeter/SayHello"
    assert span.trace_id.hex() == TRACE_ID
    assert _line_in_trace(served, "greeting")["name"] == "ada"


def test_script_getting_started_program(tmp_path: Path) -> None:
    """The plain script exits 0 after flushing: its spans (one trace for the run, a span
    per traced call) and its counter reach the collector, and its JSON log lines carry
    the trace id of the run."""
    script = _copy("script.py", tmp_path)
    with otlp_receiver() as (endpoint, received):
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=environment(endpoint, tmp_path),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        spans = [span for _, span in received.spans()]
        metric_names = {metric.name for _, metric in received.metrics()}
    (root,) = [span for span in spans if span.name == "nightly-report"]
    children = [span for span in spans if span.parent_span_id == root.span_id]
    assert len(children) == 2
    assert "report.rows" in metric_names
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert any('"report.done"' in line and root.trace_id.hex() in line for line in lines)
