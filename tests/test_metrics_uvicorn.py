"""``uvicorn --workers 2`` (spawned workers): /metrics from any worker is the exact sum."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

_APP = """
import os
import time

import unified_obs as obs
from unified_obs import metrics

served = obs.counter("app.requests", "Requests served")
obs.setup(service_name="uvicorn-test", metrics_multiprocess_dir=os.environ["TEST_MP_DIR"],
          log_level="error", traces_exporter="none", logs_exporter="none",
          metrics_exporter="none")
metrics_app = metrics.make_asgi_app()


async def app(scope, receive, send):
    if scope["type"] != "http" or scope["path"] == "/metrics":
        await metrics_app(scope, receive, send)
        return
    time.sleep(0.02)  # blocks this worker's loop: concurrent requests go to the other one
    served.inc()
    headers = [(b"content-type", b"text/plain"), (b"x-pid", str(os.getpid()).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_files(directory: Path, workers: int) -> None:
    """Both workers have imported the app (each made its counter file)."""
    deadline = time.monotonic() + 30
    while len(list(directory.glob("counter_*.db"))) < workers:
        assert time.monotonic() < deadline, "uvicorn workers did not start"
        time.sleep(0.05)


def _get(port: int, path: str) -> tuple[int, str, bytes]:
    deadline = time.monotonic() + 30
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.getheader("x-pid", ""), response.read()
        except ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
        finally:
            connection.close()


def test_uvicorn_workers_sum_exactly(tmp_path: Path) -> None:
    """Two spawned uvicorn workers serve N requests; every scrape reports exactly N."""
    (tmp_path / "uv_app.py").write_text(textwrap.dedent(_APP))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS_", "OTEL_"))}
    env.update(TEST_MP_DIR=str(tmp_path / "multiproc"), PYTHONPATH=str(tmp_path))
    port = _free_port()
    command = [
        sys.executable, "-m", "uvicorn", "uv_app:app", "--workers", "2",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)
    try:
        _wait_for_files(tmp_path / "multiproc", 2)
        requests = 60
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda _: _get(port, "/work"), range(requests)))
        scrapes = [_get(port, "/metrics")[2] for _ in range(6)]
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert [status for status, _, _ in answers] == [200] * requests
    assert len({pid for _, pid, _ in answers}) == 2
    for body in scrapes:
        families = text_string_to_metric_families(body.decode())
        totals = [s.value for f in families for s in f.samples if s.name == "app_requests_total"]
        assert totals == [float(requests)]
