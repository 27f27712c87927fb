"""A dead collector under load (reliability plan T-01, over the wire).

uvicorn serves Starlette behind the ASGI middleware (``tests/test_servers_apps.py``),
exporting traces and logs over OTLP/HTTP to a closed port or to a port that never
answers, at the library's defaults (export timeout 10 s, shutdown 5 s).  After 300
warm-up requests, 2,000 more on one keep-alive connection: every one answers 200
(nothing reaches the app or the client), the server's RSS grows by at most 20 MiB, and
after SIGTERM it exits within 6 s: the 5 s shutdown budget (the exporter is still in its
retry back-off or waiting on the blackhole, so the flush uses all of it) plus uvicorn's
own stop (the stock SDK waits for its 30 s export timeout).  Measured: RSS +5.4 MiB,
exit 5.1-5.2 s for both collectors.  The latency the middleware adds with a dead
collector is a benchmark's business (``benchmarks/wire.py``), not this test's.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import pytest

from tests.otlp_receiver import dead_collector

ROOT = Path(__file__).resolve().parents[1]
WARM_UP, LOAD = 300, 2_000


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _requests(port: int, count: int) -> int:
    """Send ``count`` GETs on one keep-alive connection; the number that failed."""
    failed = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for i in range(count):
        try:
            conn.request("GET", f"/items/{i % 50}")
            response = conn.getresponse()
            response.read()
            failed += response.status != 200
        except (OSError, http.client.HTTPException):
            failed += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.close()
    return failed


def _serve(endpoint: str) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "UNIFIED_OBS_"))}
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        UNIFIED_OBS_LOG_FORMAT="json",
        PYTHONPATH=str(ROOT),
    )
    argv = [sys.executable, "-m", "uvicorn", "tests.test_servers_apps:starlette_app"]
    argv += ["--factory", "--host"]
    argv += ["127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"]
    server = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(600):  # bounded: up to 30 s to start
        assert server.poll() is None, "server exited"
        try:
            if _requests(port, 1) == 0:
                return server, port
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("server did not start")


@pytest.mark.parametrize("kind", ["closed", "blackhole"])
def test_requests_unharmed_by_a_dead_collector(kind: Literal["closed", "blackhole"]) -> None:
    """2,000 requests with the collector dead: 0 fail, RSS +20 MiB at most after the
    warm-up, and SIGTERM ends the server within the 5 s shutdown budget + 1 s."""
    with dead_collector(kind) as endpoint:
        server, port = _serve(endpoint)
        try:
            assert _requests(port, WARM_UP) == 0
            before = _rss_mib(server.pid)
            assert _requests(port, LOAD) == 0
            growth = _rss_mib(server.pid) - before
            started = time.monotonic()
            server.send_signal(signal.SIGTERM)
            server.wait(30)
            exit_after = time.monotonic() - started
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(10)
    assert growth <= 20, f"RSS grew {growth:.1f} MiB"
    assert exit_after <= 6.0, f"exit took {exit_after:.1f} s"
