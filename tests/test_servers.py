"""Real servers on 127.0.0.1: FastAPI and Starlette under uvicorn and hypercorn, Flask and
Django under gunicorn (sync workers), a Django project under uvicorn (ASGI), each in a
subprocess exporting spans over OTLP to the test's receiver.  A real HTTP client sends
requests with a ``traceparent``; spans, the scraped ``/metrics``, the access-log lines on
the server's stdout and the response headers must agree."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Message, Request, TextMessage

from tests.otlp_receiver import Received, attributes, otlp_receiver
from tests.served import json_lines, stop_process

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
APPS = "tests.test_servers_apps"
SERVERS: dict[str, tuple[list[str], str]] = {
    "uvicorn-starlette": (
        [
            "uvicorn",
            f"{APPS}:starlette_app",
            "--factory",
            "--fd",
            "{fd}",
            "--no-access-log",
            "--ws",
            "wsproto",
            "--log-level",
            "warning",
        ],
        "/items/{item_id}",
    ),
    "uvicorn-fastapi": (
        [
            "uvicorn",
            f"{APPS}:fastapi_app",
            "--factory",
            "--fd",
            "{fd}",
            "--no-access-log",
            "--ws",
            "wsproto",
            "--log-level",
            "warning",
        ],
        "/items/{item_id}",
    ),
    "hypercorn-starlette": (
        ["hypercorn", f"{APPS}:starlette_app()", "--bind", "fd://{fd}"],
        "/items/{item_id}",
    ),
    "hypercorn-fastapi": (
        ["hypercorn", f"{APPS}:fastapi_app()", "--bind", "fd://{fd}"],
        "/items/{item_id}",
    ),
    "gunicorn-flask": (
        ["gunicorn", f"{APPS}:flask_app()", "--bind", "fd://{fd}", "-k", "sync", "-w", "1"],
        "/items/<int:item_id>",
    ),
    "gunicorn-django": (
        ["gunicorn", f"{APPS}:django_app()", "--bind", "fd://{fd}", "-k", "sync", "-w", "1"],
        "/items/<int:item_id>",
    ),
    "uvicorn-django": (  # a real project (tests/django_project) under ASGI, async views
        [
            "uvicorn",
            "tests.django_project.asgi:application",
            "--fd",
            "{fd}",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        "/items/<int:item_id>",
    ),
}


@dataclass
class Server:
    """A running server: its base URL, the OTLP receiver and its captured stdout."""

    url: str
    received: Received
    output: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> list[dict[str, Any]]:
        """SIGTERM, wait, and return the JSON lines it printed."""
        stop_process(self.process)
        return json_lines(self.output.read_text(errors="replace"))


def _environment(endpoint: str, name: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "UNIFIED_OBS_"))}
    environ.update(
        OTEL_SERVICE_NAME=name,
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_BSP_SCHEDULE_DELAY="100",
        UNIFIED_OBS_LOG_FORMAT="json",
        UNIFIED_OBS_HANDLE_SIGNALS="false",
        PYTHONPATH=str(ROOT),
    )
    return environ


@contextmanager
def run_server(name: str) -> Iterator[Server]:
    """Start ``name`` on a socket bound here to port 0; always killed at the end."""
    argv, _ = SERVERS[name]
    with otlp_receiver() as (endpoint, received), tempfile.TemporaryDirectory() as tmp:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        output = Path(tmp) / "stdout.log"
        command = [sys.executable, "-m", *(a.format(fd=listener.fileno()) for a in argv)]
        with output.open("wb") as sink:
            process = subprocess.Popen(
                command,
                pass_fds=[listener.fileno()],
                cwd=ROOT,
                env=_environment(endpoint, name),
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        server = Server(f"http://127.0.0.1:{listener.getsockname()[1]}", received, output, process)
        try:
            _wait_live(server)
            yield server
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=5)
            listener.close()


def _wait_live(server: Server) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.process.poll() is None, server.output.read_text()[-3000:]
        try:
            if httpx.get(server.url + "/livez", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("server did not come up: " + server.output.read_text()[-3000:])


def _server_spans(received: Received) -> list[Any]:
    return [span for _, span in received.spans() if span.kind == 2]  # SPAN_KIND_SERVER


def _samples(text: str, metric: str) -> dict[tuple[str, str], float]:
    """(route, status) -> value for one Prometheus sample name."""
    found: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if line.startswith(metric + "{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            key = (labels["http_route"], labels["http_response_status_code"])
            found[key] = found.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return found


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_real_server_signals_agree(name: str) -> None:
    """Spans parent to the incoming trace, /metrics counts route templates, the access log
    lines carry the same trace and request ids, and the response echoes the request id."""
    template = SERVERS[name][1]
    with run_server(name) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        first = client.get("/items/7", headers={"traceparent": TRACEPARENT, "x-request-id": "r-7"})
        client.get("/items/8")
        assert client.get("/wp-login.php").status_code == 404
        assert client.get("/nope/123").status_code == 404
        assert client.get("/boom").status_code == 500
        assert client.get("/stream").content == b"chunk" * 3
        scrape = client.get("/metrics").text
        assert server.received.wait_for(lambda r: len(_server_spans(r)) >= 6), server.stop()
        spans = _server_spans(server.received)
        lines = server.stop()
    assert first.headers["x-request-id"] == "r-7"
    _check_spans(spans, template)
    counts = _samples(scrape, "http_server_request_duration_seconds_count")
    assert counts[(template, "200")] == 2
    assert counts[("", "404")] == 2
    assert counts[("/boom", "500")] == 1
    assert not any(route.startswith(("/items/7", "/metrics", "/livez")) for route, _ in counts)
    _check_access_log(lines, template)


def _check_spans(spans: list[Any], template: str) -> None:
    names = sorted(span.name for span in spans)
    assert names == sorted(["GET", "GET", "GET /boom", "GET /stream", *[f"GET {template}"] * 2])
    child = next(s for s in spans if s.parent_span_id == bytes.fromhex(PARENT_ID))
    assert child.trace_id == bytes.fromhex(TRACE_ID)
    assert attributes(child.attributes)["http.route"] == template
    boom = next(s for s in spans if s.name == "GET /boom")
    assert boom.status.code == 2  # STATUS_CODE_ERROR
    assert attributes(boom.attributes)["http.response.status_code"] == 500
    stream = next(s for s in spans if s.name == "GET /stream")
    assert (stream.end_time_unix_nano - stream.start_time_unix_nano) / 1e9 >= 0.3


def _check_access_log(lines: list[dict[str, Any]], template: str) -> None:
    access = [line for line in lines if line.get("logger") == "unified_obs.access"]
    assert sorted(line["path"] for line in access) == sorted(
        ["/items/7", "/items/8", "/wp-login.php", "/nope/123", "/boom", "/stream"]
    )
    first = next(line for line in access if line["path"] == "/items/7")
    assert first["trace_id"] == TRACE_ID
    assert first["request_id"] == "r-7"
    assert first["route"] == template
    assert first["status"] == 200
    app_line = next(line for line in lines if line.get("event") == "item.read")
    assert app_line["trace_id"] == TRACE_ID
    assert app_line["request_id"] == "r-7"
    stream = next(line for line in access if line["path"] == "/stream")
    assert stream["duration_ms"] >= 300


def _websocket_echo(url: str, text: str) -> tuple[str, int | None]:
    """A minimal websocket client (wsproto over a socket): send ``text``, read the echo."""
    host, port = url.removeprefix("http://").split(":")
    ws = WSConnection(ConnectionType.CLIENT)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            ws.send(
                Request(
                    host=host, target="/ws", extra_headers=[(b"traceparent", TRACEPARENT.encode())]
                )
            )
        )
        echoed, code = "", None
        for _ in range(100):
            data = sock.recv(65536)
            if not data:
                break
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    sock.sendall(ws.send(Message(data=text)))
                elif isinstance(event, TextMessage):
                    echoed += event.data
                elif isinstance(event, CloseConnection):
                    code = event.code
                    sock.sendall(ws.send(event.response()))
            if code is not None:
                break
    return echoed, code


@pytest.mark.parametrize("name", ["uvicorn-starlette", "hypercorn-fastapi"])
def test_real_websocket_session_is_one_span(name: str) -> None:
    """A websocket echo over a real server: one connection span under the incoming trace."""
    with run_server(name) as server:
        assert _websocket_echo(server.url, "hello") == ("hello", 1000)
        assert server.received.wait_for(lambda r: len(_server_spans(r)) >= 1)
        spans = _server_spans(server.received)
        server.stop()
    assert [s.name for s in spans] == ["WEBSOCKET /ws"]
    assert spans[0].trace_id == bytes.fromhex(TRACE_ID)
    assert attributes(spans[0].attributes)["websocket.messages.received"] == 1


@pytest.mark.parametrize("name", ["gunicorn-django", "uvicorn-django"])
def test_django_middleware_time_and_rejections_are_inside_the_span(name: str) -> None:
    """Time spent in Django middleware and requests it rejects (403) are measured: the
    WSGI or ASGI middleware wraps the whole Django application; the probes answer in front
    of Django."""
    with run_server(name) as server, httpx.Client(base_url=server.url) as client:
        assert [client.get(p).status_code for p in ("/livez", "/readyz", "/startupz")] == [200] * 3
        assert client.get("/items/1", headers={"x-reject": "1"}).status_code == 403
        assert client.get("/items/1").status_code == 200
        scrape = client.get("/metrics").text
        assert server.received.wait_for(lambda r: len(_server_spans(r)) >= 2)
        spans = _server_spans(server.received)
        server.stop()
    durations = sorted((s.end_time_unix_nano - s.start_time_unix_nano) / 1e9 for s in spans)
    assert durations[0] >= 0.05
    counts = _samples(scrape, "http_server_request_duration_seconds_count")
    assert counts[("", "403")] == 1
    assert counts[("/items/<int:item_id>", "200")] == 1
