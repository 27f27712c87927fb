"""Graceful shutdown under real servers (uvicorn, gunicorn) in subprocesses on 127.0.0.1.

Under a bounded load with slow (1-3 s) requests in flight, SIGTERM is sent; the client
keeps sending fast requests for part of the drain delay, as a load balancer does until
it notices the 503.  Then: /readyz 503 within 100 ms; every request completes with 200
(none refused, none reset); the OTLP
receiver gets the span and log of every completed request; the flush (one export) runs
once, after the last in-flight request; the process exits within drain + budget + flush.
Exit statuses: uvicorn re-raises SIGTERM (killed by signal: -15 here, 143 in a shell);
the gunicorn master exits 0.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.otlp_receiver import Received, attributes, otlp_receiver

pytestmark = pytest.mark.slow

DRAIN_DELAY, DRAIN_TIMEOUT, SHUTDOWN_TIMEOUT = 0.5, 5.0, 2.0
TEARDOWN_MARGIN = 1.5  # interpreter and server teardown after the flush

COMMON = """
import os, threading, time
import unified_obs as obs
from unified_obs.lifecycle import inflight

tel = obs.setup(service_name="srv", metrics_exporter="none")
log = obs.get_logger("app")
tel.on_shutdown(
    lambda: print(f"hook {time.monotonic():.4f} inflight={inflight.count}", flush=True)
)
if os.environ.get("HANG_CHECK"):
    never = threading.Event()
    tel.health.add_check("db", lambda: never.wait(60), timeout=0.3)
if os.environ.get("WARMUP"):
    tel.health.add_warmup("cache", lambda: time.sleep(float(os.environ["WARMUP"])))
if os.environ.get("ADMIN_PORT"):
    tel.serve_admin(int(os.environ["ADMIN_PORT"]))


def seconds(query):
    return float(query.partition("=")[2] or 0)
"""

ASGI_APP = (
    COMMON
    + """
import asyncio
from unified_obs.asgi import ObservabilityMiddleware


async def inner(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await asyncio.sleep(float(os.environ.get("STARTUP_DELAY", "0")))
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await asyncio.sleep(seconds(scope["query_string"].decode()))
    log.info("request.done", path=scope["path"])
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


app = ObservabilityMiddleware(inner)
"""
)

WSGI_APP = (
    COMMON
    + """
from unified_obs.wsgi import ObservabilityMiddleware


def inner(environ, start_response):
    time.sleep(seconds(environ.get("QUERY_STRING", "")))
    log.info("request.done", path=environ["PATH_INFO"])
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


app = ObservabilityMiddleware(inner)
"""
)


def free_port() -> int:
    """A port the OS picked for 127.0.0.1 (bound to 0, then released for the server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A server subprocess and where it listens."""

    proc: subprocess.Popen[str]
    port: int
    admin_port: int

    def get(self, path: str, timeout: float = 10.0, port: int | None = None) -> int:
        """Status of GET ``path`` on a new connection."""
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    def wait_status(self, path: str, status: int, limit: float, port: int | None = None) -> float:
        """Seconds until ``path`` answers ``status`` (polling every 2 ms)."""
        start = time.monotonic()
        while True:
            try:
                if self.get(path, timeout=1.0, port=port) == status:
                    return time.monotonic() - start
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.proc.communicate()}")
            assert time.monotonic() - start < limit, f"{path} never answered {status}"
            time.sleep(0.002)


def _command(kind: str, port: int) -> list[str]:
    if kind == "uvicorn":
        return [
            *(sys.executable, "-m", "uvicorn", "asgi_app:app", "--host", "127.0.0.1"),
            *("--port", str(port), "--no-access-log", "--log-level", "warning"),
            *("--timeout-graceful-shutdown", str(int(DRAIN_TIMEOUT))),
        ]
    if kind == "hypercorn":
        return [
            *(sys.executable, "-m", "hypercorn", "asgi_app:app", "-b", f"127.0.0.1:{port}"),
            *("--graceful-timeout", str(int(DRAIN_TIMEOUT)), "--log-level", "warning"),
        ]
    preload = ("--preload", "-c", "gunicorn_conf.py") if kind == "gunicorn-preload" else ()
    return [
        *(sys.executable, "-m", "gunicorn", "wsgi_app:app", "-b", f"127.0.0.1:{port}"),
        *("-k", "gthread", "--threads", "32", "-w", "1", "--log-level", "warning"),
        *("--graceful-timeout", str(int(DRAIN_TIMEOUT)), *preload),
    ]


GUNICORN_CONF = """
def post_worker_init(worker):
    # --preload: the app was loaded in the master; gunicorn set the worker's handlers since.
    from unified_obs import lifecycle
    lifecycle.install_signal_handlers()
"""


@contextmanager
def serve(kind: str, tmp_path: Path, endpoint: str, **env: str) -> Iterator[Server]:
    """Run ``kind`` serving the test app; killed at the end whatever happened."""
    (tmp_path / "asgi_app.py").write_text(ASGI_APP)
    (tmp_path / "wsgi_app.py").write_text(WSGI_APP)
    (tmp_path / "gunicorn_conf.py").write_text(GUNICORN_CONF)
    port, admin_port = free_port(), free_port()
    environ = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
        "PYTHONUNBUFFERED": "1",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_TIMEOUT": "30000",
        "OTEL_BSP_SCHEDULE_DELAY": "60000",  # nothing exported before the shutdown flush
        "OTEL_BLRP_SCHEDULE_DELAY": "60000",
        "UNIFIED_OBS_DRAIN_DELAY": str(DRAIN_DELAY),
        "UNIFIED_OBS_DRAIN_TIMEOUT": str(DRAIN_TIMEOUT),
        "UNIFIED_OBS_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT),
        "ADMIN_PORT": str(admin_port),
        **env,
    }
    proc = subprocess.Popen(
        _command(kind, port),
        cwd=tmp_path,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: workers are killed with it
    )
    try:
        yield Server(proc, port, admin_port)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)


@dataclass
class Load:
    """Slow requests in flight plus a bounded stream of fast ones; every outcome kept."""

    server: Server
    outcomes: dict[str, object] = field(default_factory=dict)  # path -> status / error
    finished: dict[str, float] = field(default_factory=dict)  # path -> client monotonic
    stop_at: float = float("inf")  # when the "load balancer" stops sending
    threads: list[threading.Thread] = field(default_factory=list)

    def one(self, path: str) -> None:
        """One request; refused connections are recorded as such (never accepted)."""
        try:
            self.outcomes[path] = self.server.get(path)
            self.finished[path] = time.monotonic()
        except ConnectionRefusedError:
            self.outcomes[path] = "refused"
        except OSError as exc:
            self.outcomes[path] = repr(exc)

    def start(self, slow: int) -> None:
        """``slow`` requests of 1-3 s each, and a paced fast stream (about 50/s)."""
        for index in range(slow):
            path = f"/slow/{index}?s={1 + index % 3}"
            self.threads.append(threading.Thread(target=self.one, args=(path,)))
        self.threads.append(threading.Thread(target=self.fast_stream))
        for thread in self.threads:
            thread.start()

    def fast_stream(self) -> None:
        """Fast requests until ``stop_at`` or a refusal (bounded: at most 500)."""
        for index in range(500):
            if time.monotonic() >= self.stop_at:
                return
            path = f"/fast/{index}"
            self.one(path)
            if self.outcomes[path] == "refused":
                return
            time.sleep(0.02)

    def join(self) -> None:
        """Wait for every client thread (bounded)."""
        for thread in self.threads:
            thread.join(15)

    @property
    def accepted(self) -> dict[str, object]:
        """Requests the server accepted (anything but a refused connection)."""
        return {p: o for p, o in self.outcomes.items() if o != "refused"}


def _stopped_serving(server: Server, since: float, closed: list[float]) -> None:
    """Poll ``/livez`` until a request is refused or left unanswered (uvicorn closes its
    listener, gthread stops accepting); append when that request was sent."""
    deadline = since + 20
    while time.monotonic() < deadline:
        sent = time.monotonic()
        try:
            server.get("/livez", timeout=0.3)
        except OSError:
            closed.append(sent - since)
            return
        time.sleep(0.01)


def _paths(received: Received) -> tuple[set[str], set[str]]:
    spans = {
        str(attributes(span.attributes).get("url.path"))
        for _, span in received.spans()
        if span.kind == 2  # SERVER
    }
    logs = {
        str(attributes(record.attributes).get("path"))
        for _, record in received.logs()
        if record.body.string_value == "request.done"
    }
    return spans, logs


def _hooks(output: str) -> list[tuple[float, int]]:
    return [
        (float(line.split()[1]), int(line.split()[2].partition("=")[2]))
        for line in output.splitlines()
        if line.startswith("hook ")
    ]


@pytest.mark.parametrize(("kind", "status"), [("uvicorn", -signal.SIGTERM), ("gunicorn", 0)])
def test_sigterm_under_load(kind: str, status: int, tmp_path: Path) -> None:
    """The whole graceful shutdown under a real server (see module docstring)."""
    with otlp_receiver() as (endpoint, received), serve(kind, tmp_path, endpoint) as server:
        server.wait_status("/readyz", 200, limit=20)
        load = Load(server)
        load.start(slow=9)
        time.sleep(0.3)  # the slow requests are in the server now
        sent, closed = time.monotonic(), list[float]()
        server.proc.send_signal(signal.SIGTERM)
        poller = threading.Thread(target=_stopped_serving, args=(server, sent, closed))
        poller.start()
        flipped = server.wait_status("/readyz", 503, limit=2)
        # A load balancer sees the 503 and stops routing before the drain delay ends.
        load.stop_at = sent + DRAIN_DELAY * 0.6
        live = server.get("/livez", port=server.admin_port)
        out, err = server.proc.communicate(timeout=30)
        exited = time.monotonic() - sent
        load.join()
        poller.join(20)
        spans, logs = _paths(received)
        exports = len(received.requests["/v1/traces"])
    print(
        f"{kind}: 503 after {flipped * 1000:.1f} ms, stopped accepting after {closed[0]:.2f} s,"
        f" exit after {exited:.2f} s"
    )
    assert flipped < 0.1
    assert DRAIN_DELAY - 0.05 <= closed[0] <= DRAIN_DELAY + 0.3  # open through the delay
    assert live == 200
    accepted = load.accepted
    assert accepted == load.outcomes  # nothing refused: the listener outlived the routing
    assert {p: o for p, o in accepted.items() if o != 200} == {}, err
    assert sum(p.startswith("/slow/") for p in accepted) == 9
    assert any(t > sent + DRAIN_DELAY / 2 for t in load.finished.values())  # served in delay
    completed = {p.partition("?")[0] for p in accepted}
    assert completed <= spans
    assert completed <= logs
    hooks = _hooks(out)
    assert len(hooks) == 1, out + err
    assert hooks[0][1] == 0  # nothing in flight when the flush began
    assert hooks[0][0] >= max(load.finished.values()) - 0.05
    assert exports == 1  # one flush, after the last request
    assert server.proc.returncode == status
    assert exited < DRAIN_DELAY + DRAIN_TIMEOUT + SHUTDOWN_TIMEOUT + TEARDOWN_MARGIN
