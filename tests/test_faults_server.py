"""HTTP fault injection on real servers: uvicorn (ASGI) and gunicorn (WSGI) in
subprocesses, a client on loopback.  A header alone never injects a fault; armed by
``UNIFIED_OBS_FAULTS_ENABLED=true``, the header-controlled abort answers 503, the access
line flags it and the server span carries it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.otlp_receiver import attributes, otlp_receiver
from unified_obs.resilience.faults import HEADER_ABORT

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SERVERS = {
    "uvicorn": [
        "uvicorn", "tests.faults_app:asgi_app", "--factory", "--fd", "{fd}",
        "--no-access-log", "--log-level", "warning",
    ],
    "gunicorn": ["gunicorn", "tests.faults_app:wsgi_app()", "--bind", "fd://{fd}", "-w", "1"],
}  # fmt: skip


@contextmanager
def _serve(name: str, armed: bool) -> Iterator[tuple[str, Any, list[str]]]:
    """``name`` serving the faults app; yields (url, receiver, printed) and stops the
    server with SIGTERM (flushing spans), then fills ``printed`` with its stdout lines."""
    with otlp_receiver() as (endpoint, received), tempfile.TemporaryDirectory() as tmp:
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "UNIFIED_"))}
        environ.update(
            OTEL_SERVICE_NAME="faults",
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
            OTEL_BSP_SCHEDULE_DELAY="100",
            UNIFIED_OBS_LOG_FORMAT="json",
            UNIFIED_OBS_HANDLE_SIGNALS="false",
            PYTHONPATH=str(ROOT),
        )
        if armed:
            environ["UNIFIED_OBS_FAULTS_ENABLED"] = "true"
        listener = socket.socket()
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        output = Path(tmp) / "stdout.log"
        argv = [a.format(fd=listener.fileno()) for a in SERVERS[name]]
        with output.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", *argv], pass_fds=[listener.fileno()], cwd=ROOT,
                env=environ, stdout=sink, stderr=subprocess.STDOUT,
            )  # fmt: skip
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        printed: list[str] = []
        try:
            _wait_live(url, process, output)
            yield url, received, printed
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)
            printed.extend(output.read_text(errors="replace").splitlines())
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=5)
            listener.close()


def _wait_live(url: str, process: subprocess.Popen[bytes], output: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, output.read_text()[-3000:]
        try:
            if httpx.get(url + "/livez", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("server did not come up: " + output.read_text()[-3000:])


def _access_lines(printed: list[str]) -> list[dict[str, Any]]:
    lines = []
    for line in printed:
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == "http.request":
                lines.append(record)
    return lines


@pytest.mark.parametrize("server", SERVERS)
def test_a_header_alone_never_injects_a_fault(server: str) -> None:
    """Not armed, requests asking for an abort by header are answered by the app."""
    with _serve(server, armed=False) as (url, _, _):
        for n in range(5):
            response = httpx.get(f"{url}/items/{n}", headers={HEADER_ABORT: "503"}, timeout=10)
            assert response.status_code == 200


@pytest.mark.parametrize("server", SERVERS)
def test_armed_abort_is_answered_flagged_and_marked(server: str) -> None:
    """Armed by the setting, a request asking for an abort by header gets 503 and one
    without the header 200; the access line flags the fault, the span carries it."""
    with _serve(server, armed=True) as (url, received, printed):
        faulted = httpx.get(f"{url}/items/1", headers={HEADER_ABORT: "503"}, timeout=10)
        plain = httpx.get(f"{url}/items/2", timeout=10)
    assert (faulted.status_code, plain.status_code) == (503, 200)
    lines = {line["path"]: line for line in _access_lines(printed)}
    assert lines["/items/1"]["fault"] == "abort"
    assert "fault" not in lines["/items/2"]
    spans = [span for _, span in received.spans() if span.kind == 2]
    marked = [
        attributes(s.attributes) for s in spans if attributes(s.attributes).get("fault.injected")
    ]
    assert len(marked) == 1
    assert marked[0]["chaos.experiment.id"] == "exp-http"
    assert marked[0]["http.response.status_code"] == 503
