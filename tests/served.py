"""Run a real server (uvicorn, gunicorn, a plain ``python`` program) in a subprocess for
the documentation tests, on a loopback socket bound here to a port the OS picks.

uvicorn and gunicorn are handed the socket itself (``--fd`` / ``fd://``), so the port is
known before the server starts and nothing races for it; a program that binds its own
port (the gRPC example) is given a free one in ``PORT``.  The server's stdout and stderr
go to one file the test reads; the process is always killed at the end.

:func:`serving` runs a server object (``http.server``, ``wsgiref``) on a thread of the
test's own process instead.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 30.0


@dataclass
class Served:
    """A running server: where it listens and what it printed."""

    url: str
    port: int
    output: Path
    process: subprocess.Popen[bytes]

    def text(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        return self.output.read_text(errors="replace")

    def json_lines(self) -> list[dict[str, Any]]:
        """The JSON objects among the printed lines."""
        return json_lines(self.text())

    def stop(self) -> int:
        """SIGTERM and wait (kill after 15 s); the exit code."""
        return stop_process(self.process)


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON objects among a server's printed lines."""
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found


@contextmanager
def serving(server: socketserver.TCPServer) -> Iterator[str]:
    """Serve ``server`` (bound to a loopback port) on a daemon thread; yields its base URL,
    then shuts it down and closes its socket."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def stop_process(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM and wait (kill after 15 s); the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    return process.returncode


def environment(otlp_endpoint: str | None, cwd: Path, **extra: str) -> dict[str, str]:
    """This process's environment without OTEL_* / UNIFIED_OBS_* variables, exporting to
    ``otlp_endpoint`` quickly (100 ms batches), importing from ``cwd`` and the repo."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "UNIFIED_OBS_"))}
    environ.update(
        PYTHONPATH=os.pathsep.join([str(cwd), str(ROOT)]),
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_BLRP_SCHEDULE_DELAY="100",
        OTEL_METRIC_EXPORT_INTERVAL="500",
        PYTHONUNBUFFERED="1",
    )
    if otlp_endpoint is not None:
        environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_endpoint
    environ.update(extra)
    return environ


def server_command(server: str, target: str, fd: int, options: Sequence[str] = ()) -> list[str]:
    """The command line that serves ``target`` (``module:attr``) on socket ``fd``."""
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", target, "--fd", str(fd), *options]
    if server == "gunicorn":
        bind = ["--bind", f"fd://{fd}", "-w", "1"]
        return [sys.executable, "-m", "gunicorn", target, *bind, *options]
    raise ValueError(f"unknown server {server!r}")


@contextmanager
def serve(
    server: str,
    target: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    ready_path: str = "/livez",
    options: Sequence[str] = (),
) -> Iterator[Served]:
    """Serve ``target`` under ``server`` ("uvicorn" or "gunicorn", with its command-line
    ``options``) until the block ends."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    command = server_command(server, target, listener.fileno(), options)
    try:
        with _started(command, cwd, env, port, [listener.fileno()]) as served:
            _wait_ready(served, lambda: _http_ready(served.url + ready_path))
            yield served
    finally:
        listener.close()


@contextmanager
def run_program(
    script: Path, *, cwd: Path, env: Mapping[str, str], ready: Callable[[int], bool]
) -> Iterator[Served]:
    """Run ``python script`` with a free port in ``PORT`` until ``ready(port)`` holds."""
    port = free_port()
    command = [sys.executable, str(script)]
    with _started(command, cwd, {**env, "PORT": str(port)}, port, []) as served:
        _wait_ready(served, lambda: ready(port))
        yield served


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def _started(
    command: list[str], cwd: Path, env: Mapping[str, str], port: int, fds: list[int]
) -> Iterator[Served]:
    output = cwd / f"output-{port}.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=cwd, env=dict(env), pass_fds=fds, stdout=sink, stderr=subprocess.STDOUT
        )
    served = Served(f"http://127.0.0.1:{port}", port, output, process)
    try:
        yield served
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)


def _http_ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


def _wait_ready(served: Served, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise AssertionError("server exited:\n" + served.text()[-3000:])
        if ready():
            return
        time.sleep(0.1)  # polling for readiness, not asserting on time
    raise AssertionError("server did not come up:\n" + served.text()[-3000:])
