"""Real servers under faults: a dead or silent collector, a hanging readiness check,
saturated workers, and the probe walk from start-up to drain."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from tests.otlp_receiver import attributes, blackhole, closed_port, otlp_receiver
from tests.test_shutdown_servers import (
    DRAIN_DELAY,
    TEARDOWN_MARGIN,
    Server,
    serve,
)
from unified_obs.lifecycle._os_signals import REPEAT_AFTER

pytestmark = pytest.mark.slow


def _statuses(server: Server, port: int) -> dict[str, int]:
    return {p: server.get(p, port=port) for p in ("/startupz", "/readyz", "/livez")}


@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn"])
@pytest.mark.parametrize("collector", ["closed", "blackhole"])
def test_shutdown_bounded_with_broken_collector(kind: str, collector: str, tmp_path: Path) -> None:
    """Collector refusing or never answering (export timeout 30 s): exit within the deadline."""
    with blackhole() as hole:
        port = closed_port() if collector == "closed" else hole
        target = f"http://127.0.0.1:{port}"
        with serve(kind, tmp_path, target, UNIFIED_OBS_SHUTDOWN_TIMEOUT="1") as server:
            server.wait_status("/readyz", 200, limit=20)
            assert all(server.get(f"/work/{i}") == 200 for i in range(5))
            assert server.get("/livez") == 200  # liveness never depends on the collector
            sent = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            out, err = server.proc.communicate(timeout=30)
            exited = time.monotonic() - sent
    print(f"{kind}, collector {collector}: exit after {exited:.2f} s")
    assert "hook" in out, err
    assert exited < DRAIN_DELAY + 1.0 + TEARDOWN_MARGIN


def _slow_requests(
    server: Server, count: int, seconds: float, statuses: list[int] | None = None
) -> list[threading.Thread]:
    """``count`` requests of ``seconds`` each in threads; their statuses go to ``statuses``."""
    done = [] if statuses is None else statuses

    def one(index: int) -> None:
        done.append(server.get(f"/busy/{index}?s={seconds}"))

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads


@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn"])
def test_hanging_check_and_saturated_workers(kind: str, tmp_path: Path) -> None:
    """A hanging readiness check: /readyz 503 within its 0.3 s timeout, /livez stays 200;
    with every app worker busy, probes still answer fast (uvicorn: on the app port, the
    loop is free; gunicorn: on the admin port, its threads are all taken)."""
    with (
        otlp_receiver() as (endpoint, _),
        serve(kind, tmp_path, endpoint, HANG_CHECK="1") as server,
    ):
        server.wait_status("/livez", 200, limit=20)
        probe_port = server.port if kind == "uvicorn" else server.admin_port
        start = time.monotonic()
        assert server.get("/readyz", port=probe_port) == 503
        readyz = time.monotonic() - start
        busy = _slow_requests(server, 40, 1.2)  # gunicorn has 32 threads
        time.sleep(0.3)
        latencies = []
        for _ in range(20):
            start = time.monotonic()
            assert server.get("/livez", port=probe_port) == 200
            latencies.append(time.monotonic() - start)
        for thread in busy:
            thread.join(10)
    latencies.sort()
    print(
        f"{kind}: /readyz 503 after {readyz * 1000:.0f} ms; /livez p50 "
        f"{latencies[10] * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms under saturation"
    )
    assert readyz < 0.3 + 0.2
    assert latencies[-1] < 0.1


def test_probe_walk_under_uvicorn(tmp_path: Path) -> None:
    """Starting (lifespan and warm-up running): startup 503, ready 503, live 200; running:
    all 200; draining after SIGTERM: ready 503, live 200."""
    with (
        otlp_receiver() as (endpoint, _),
        serve("uvicorn", tmp_path, endpoint, STARTUP_DELAY="0.6", WARMUP="0.3") as server,
    ):
        admin = server.admin_port
        server.wait_status("/livez", 200, limit=20, port=admin)
        assert _statuses(server, admin) == {"/startupz": 503, "/readyz": 503, "/livez": 200}
        server.wait_status("/startupz", 200, limit=10)  # app port: lifespan done, warm-up done
        assert _statuses(server, server.port) == {"/startupz": 200, "/readyz": 200, "/livez": 200}
        server.proc.send_signal(signal.SIGTERM)
        server.wait_status("/readyz", 503, limit=1)
        assert server.get("/livez") == 200
        assert server.get("/livez", port=admin) == 200
        server.proc.communicate(timeout=30)
    assert server.proc.returncode == -signal.SIGTERM


def test_second_sigterm_under_uvicorn(tmp_path: Path) -> None:
    """During a long drain delay, a second SIGTERM (a second after the first) exits at once."""
    with (
        otlp_receiver() as (endpoint, _),
        serve("uvicorn", tmp_path, endpoint, UNIFIED_OBS_DRAIN_DELAY="15") as server,
    ):
        server.wait_status("/readyz", 200, limit=20)
        first = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.wait_status("/readyz", 503, limit=1)
        time.sleep(max(first + REPEAT_AFTER + 0.05 - time.monotonic(), 0.0))
        sent = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.proc.communicate(timeout=10)
        exited = time.monotonic() - sent
    assert exited < 1.0
    assert server.proc.returncode == 128 + signal.SIGTERM


def test_gunicorn_preload_with_post_worker_init(tmp_path: Path) -> None:
    """--preload plus install_signal_handlers() in post_worker_init: the worker drains too."""
    with (
        otlp_receiver() as (endpoint, received),
        serve("gunicorn-preload", tmp_path, endpoint) as server,
    ):
        server.wait_status("/readyz", 200, limit=20)
        statuses: list[int] = []
        slow = _slow_requests(server, 3, 1.5, statuses)
        time.sleep(0.3)
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait_status("/readyz", 503, limit=1) < 0.1
        assert server.get("/fast") == 200  # still serving during the drain delay
        server.proc.communicate(timeout=30)
        for thread in slow:
            thread.join(10)
        paths = {str(attributes(s.attributes).get("url.path")) for _, s in received.spans()}
    assert statuses == [200, 200, 200]
    assert {"/busy/0", "/busy/1", "/busy/2", "/fast"} <= paths
    assert server.proc.returncode == 0


def test_hypercorn_finishes_requests_and_flushes_once(tmp_path: Path) -> None:
    """hypercorn: SIGTERM reaches its supervisor, which stops the worker process through an
    event (no signal reaches the app, so no drain delay); in-flight requests finish, then
    lifespan shutdown fails readiness and flushes once; exit status 0."""
    with otlp_receiver() as (endpoint, received), serve("hypercorn", tmp_path, endpoint) as server:
        server.wait_status("/readyz", 200, limit=20)
        statuses: list[int] = []
        slow = _slow_requests(server, 3, 1.0, statuses)
        time.sleep(0.3)
        server.proc.send_signal(signal.SIGTERM)
        flipped = server.wait_status("/readyz", 503, limit=5, port=server.admin_port)
        for thread in slow:
            thread.join(10)
        out, err = server.proc.communicate(timeout=30)
        paths = {str(attributes(s.attributes).get("url.path")) for _, s in received.spans()}
    hooks = [line for line in out.splitlines() if line.startswith("hook ")]
    print(f"hypercorn: readiness 503 after {flipped:.2f} s (at lifespan shutdown)")
    assert statuses == [200, 200, 200], err
    assert {"/busy/0", "/busy/1", "/busy/2"} <= paths
    assert len(hooks) == 1
    assert hooks[0].endswith("inflight=0")
    assert len(received.requests["/v1/traces"]) == 1
    assert server.proc.returncode == 0
