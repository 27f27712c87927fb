"""Runtime metrics under ``uvicorn --workers 2`` in multiprocess mode: GC pauses sum over
the workers, each worker has its own thread and task gauges, and both loops are watched."""

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

import pytest
from prometheus_client.parser import text_string_to_metric_families

_APP = """
import gc
import os
import time

import unified_obs as obs
from unified_obs.asgi import ObservabilityMiddleware

obs.setup(service_name="runtime-workers", metrics_multiprocess_dir=os.environ["TEST_MP_DIR"],
          log_level="error", traces_exporter="none", logs_exporter="none",
          metrics_exporter="none")
gc.disable()  # only the collections the test asks for


async def collect(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    gc.collect(2)
    time.sleep(0.02)  # holds this worker's loop: concurrent requests go to the other one
    headers = [(b"x-pid", str(os.getpid()).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


app = ObservabilityMiddleware(collect)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
            time.sleep(0.1)  # the server is still starting
        finally:
            connection.close()


def _samples(body: bytes, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name == name
    ]


def _gen2_pauses(body: bytes) -> float:
    return sum(
        value
        for labels, value in _samples(body, "unified_obs_gc_pause_duration_seconds_count")
        if labels.get("cpython_gc_generation") == "2"
    )


@pytest.mark.slow
def test_runtime_metrics_add_up_over_two_workers(tmp_path: Path) -> None:
    """40 requests that each run one full collection, spread over two workers: every
    scrape soon reports at least 40 generation-2 pauses in total (each worker's own
    collections too), one thread gauge per live worker, and lag observed on both loops."""
    (tmp_path / "rt_app.py").write_text(textwrap.dedent(_APP))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS_", "OTEL_"))}
    env.update(TEST_MP_DIR=str(tmp_path / "multiproc"), PYTHONPATH=str(tmp_path))
    port = _free_port()
    command = [
        sys.executable, "-m", "uvicorn", "rt_app:app", "--workers", "2",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda _: _get(port, "/collect"), range(40)))
        deadline = time.monotonic() + 15
        body = _get(port, "/metrics")[2]
        while _gen2_pauses(body) < 40 and time.monotonic() < deadline:
            time.sleep(0.2)  # the other worker flushes its pauses once a second
            body = _get(port, "/metrics")[2]
    finally:
        server.terminate()
        server.wait(timeout=20)
    pids = {pid for _, pid, _ in answers}
    assert len(pids) == 2
    assert _gen2_pauses(body) >= 40
    threads = _samples(body, "process_threads")
    assert {labels["pid"] for labels, _ in threads} == pids
    assert all(value >= 1 for _, value in threads)
    lag = _samples(body, "unified_obs_asyncio_loop_lag_seconds_count")
    assert sum(value for _, value in lag) > 0
    tasks = _samples(body, "unified_obs_asyncio_tasks")
    assert {labels["pid"] for labels, _ in tasks} == pids
