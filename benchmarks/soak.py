"""A bounded soak (reliability plan T-29): a real server under steady load for N minutes,
with a collector that flaps, sampled for growth.

    python -m benchmarks.soak [--minutes 5] [--rps 200] [--every 5] [--flap 30]

uvicorn serves an ASGI app behind ``ObservabilityMiddleware`` on 127.0.0.1 (a port the
OS picked); traces and logs go over OTLP/HTTP to a collector in this process that is up
for ``--flap`` seconds (200) and down for as many (503).  A client paced at ``--rps``
keeps one keep-alive connection busy until the time is up.  Every ``--every`` seconds
the server's RSS, threads and open file descriptors (from /proc) and its span queue
depth (the app's ``/soak/queue``) are sampled.

After a warm-up (the first fifth of the run, at most a minute), the verdicts:

* RSS slope (least squares) at most ``--rss-slope`` MiB per 10 minutes (plan: 1), and
  RSS growth from the first steady sample to the last at most ``--rss-growth`` MiB (a
  short run's slope extrapolates noise: the 30-second test leans on the growth);
* threads and file descriptors: max - min at most ``--jitter`` (plan: constant);
* queue depth never above the batch queue's size (2048);
* no failed request.

Prints one row per sample and a JSON summary as the last line; exit status 1 when a
verdict fails.  A benchmark, not a test: ``tests/test_soak.py`` runs 30 seconds of it.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
QUEUE_SIZE = 2048  # OTEL_BSP_MAX_QUEUE_SIZE's default


def app() -> Any:
    """The ASGI app uvicorn serves (``--factory``): ``/`` answers, ``/soak/queue`` reports
    the span batch queue's depth (benchmark-only: it reads the SDK's private fields)."""
    import unified_obs
    from unified_obs.asgi import ObservabilityMiddleware

    tel = unified_obs.setup(service_name="soak", log_format="json", handle_signals=False)
    log = unified_obs.get_logger("soak")

    async def asgi(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b"ok"
        if scope["path"] == "/soak/queue":
            body = str(_queue_depth(tel.tracer_provider)).encode()
        else:
            log.info("handled", path=scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return ObservabilityMiddleware(asgi)


def _queue_depth(provider: Any) -> int:
    processors = getattr(getattr(provider, "_active_span_processor", None), "_span_processors", ())
    queues = (getattr(getattr(p, "_batch_processor", None), "_queue", ()) for p in processors)
    return sum(len(queue) for queue in queues)


class FlappingCollector:
    """OTLP/HTTP on loopback: 200 for ``flap`` seconds, then 503 for as many, and so on."""

    def __init__(self, flap: float) -> None:
        self.flap, self.started = flap, time.monotonic()
        self.accepted = self.refused = 0
        collector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                up = collector.up()
                collector.accepted += up
                collector.refused += not up
                self.send_response(200 if up else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def up(self) -> bool:
        """Whether the collector answers 200 now."""
        return int((time.monotonic() - self.started) / self.flap) % 2 == 0

    @contextlib.contextmanager
    def running(self) -> Iterator[FlappingCollector]:
        """Serve until the block ends."""
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


@dataclass(frozen=True)
class Sample:
    """One look at the server."""

    at_s: float
    rss_mib: float
    threads: int
    fds: int
    queue: int
    requests: int


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serving(endpoint: str) -> Iterator[tuple[int, int]]:
    """uvicorn serving :func:`app`, exporting to ``endpoint``: ``(pid, port)``."""
    port = _free_port()
    argv = [sys.executable, "-m", "uvicorn", "benchmarks.soak:app", "--factory"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    argv += ["--log-level", "warning"]
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2000",
    }
    env.update(OTEL_TRACES_EXPORTER="otlp", OTEL_LOGS_EXPORTER="otlp", OTEL_METRICS_EXPORTER="none")
    with open(os.devnull, "wb") as null:
        server = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=null, stderr=subprocess.STDOUT)
    try:
        _wait(port, server)
        yield server.pid, port
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait(port: int, server: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if server.poll() is not None:
            raise RuntimeError(f"server exited with {server.returncode}")
        with contextlib.suppress(OSError):
            _get(http.client.HTTPConnection("127.0.0.1", port, timeout=2), "/soak/queue")
            return
        time.sleep(0.05)
    raise RuntimeError("server did not start")


def _get(conn: http.client.HTTPConnection, path: str) -> bytes:
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        raise OSError(f"{path}: {response.status}")
    return body


class Load:
    """One keep-alive client paced at ``rps`` until :meth:`stop` (bounded by the run)."""

    def __init__(self, port: int, rps: float) -> None:
        self.port, self.interval = port, 1.0 / rps
        self.sent = self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        """Begin sending."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sending and wait for the last request."""
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        due = time.monotonic()
        while not self._stop.is_set():
            try:
                _get(conn, f"/item/{self.sent % 100}")
            except (OSError, http.client.HTTPException):
                self.failed += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            self.sent += 1
            due += self.interval
            self._stop.wait(max(due - time.monotonic(), 0.0))


def sample(pid: int, port: int, started: float, requests: int) -> Sample:
    """The server's RSS, threads, descriptors and span queue depth now."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        queue = int(_get(conn, "/soak/queue"))
    finally:
        conn.close()
    return Sample(
        at_s=round(time.monotonic() - started, 1),
        rss_mib=int(status["VmRSS"].split()[0]) / 1024,
        threads=int(status["Threads"]),
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        queue=queue,
        requests=requests,
    )


def slope_per_10_min(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of ``(seconds, value)`` points, per 10 minutes."""
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread * 600


def verdicts(samples: Sequence[Sample], warmup: float, args: argparse.Namespace) -> dict[str, Any]:
    """The flatness figures after ``warmup`` seconds and whether each is within its limit."""
    steady = [s for s in samples if s.at_s >= warmup] or list(samples)
    slope = slope_per_10_min([(s.at_s, s.rss_mib) for s in steady])
    threads = max(s.threads for s in steady) - min(s.threads for s in steady)
    fds = max(s.fds for s in steady) - min(s.fds for s in steady)
    queue = max(s.queue for s in samples)
    return {
        "rss_slope_mib_per_10min": round(slope, 2),
        "rss_first_mib": round(steady[0].rss_mib, 1),
        "rss_last_mib": round(steady[-1].rss_mib, 1),
        "threads_range": threads,
        "fds_range": fds,
        "queue_max": queue,
        "pass": {
            "rss": slope <= args.rss_slope
            and steady[-1].rss_mib - steady[0].rss_mib <= args.rss_growth,
            "threads": threads <= args.jitter,
            "fds": fds <= args.jitter,
            "queue": queue <= QUEUE_SIZE,
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak; print the samples and the verdicts; 1 when one fails."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rps", type=float, default=200.0)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--flap", type=float, default=30.0, help="collector up/down seconds")
    parser.add_argument("--rss-slope", type=float, default=1.0, help="MiB per 10 min")
    parser.add_argument("--rss-growth", type=float, default=10.0, help="MiB, steady part")
    parser.add_argument("--jitter", type=int, default=2, help="threads/fds max - min")
    args = parser.parse_args(argv)
    duration = args.minutes * 60
    warmup = min(duration / 5, 60.0)
    with (
        FlappingCollector(args.flap).running() as collector,
        serving(collector.endpoint) as (
            pid,
            port,
        ),
    ):
        load = Load(port, args.rps)
        started = time.monotonic()
        load.start()
        samples: list[Sample] = []
        print(f"{'t (s)':>7} {'RSS MiB':>8} {'threads':>7} {'fds':>4} {'queue':>5} {'requests':>8}")
        try:
            while time.monotonic() - started < duration:
                time.sleep(min(args.every, max(duration - (time.monotonic() - started), 0.0)))
                now = sample(pid, port, started, load.sent)
                samples.append(now)
                print(
                    f"{now.at_s:7.1f} {now.rss_mib:8.1f} {now.threads:7d} {now.fds:4d}"
                    f" {now.queue:5d} {now.requests:8d}",
                    flush=True,
                )
        finally:
            load.stop()
    summary = verdicts(samples, warmup, args)
    summary.update(
        minutes=args.minutes,
        requests=load.sent,
        failed_requests=load.failed,
        collector_accepted=collector.accepted,
        collector_refused=collector.refused,
        samples=[asdict(s) for s in samples],
    )
    summary["pass"]["requests"] = load.failed == 0
    print(json.dumps(summary))
    return 0 if all(summary["pass"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
