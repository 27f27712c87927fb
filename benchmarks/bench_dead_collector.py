"""Request latency and server CPU with a dead collector (reliability plan T-01, T-03).

Four uvicorn servers (one worker, ``--http httptools``) on 127.0.0.1 serve the smallest
ASGI app: ``bare`` without unified_obs, and three behind ``ObservabilityMiddleware``
after ``setup()`` with traces, metrics and logs over OTLP/HTTP to

* ``live``: a collector in this process that reads each request and answers 200;
* ``blackhole``: a listening socket that is never accepted (the kernel completes the
  handshake, nothing ever answers, so every export attempt waits out its timeout);
* ``closed``: a port that was bound and released (every connection is refused).

Every span is sampled (the default), every request writes its JSON access line to
``/dev/null`` (the server's stdout) and, as an OTLP log record, to the collector.
After a discarded 2 s warm-up per server (long enough for a dead collector's queues to
fill, so the rounds measure the dropping steady state), each round loads every server
for one bounded ``wrk -t1 -cN -dS --latency`` slice, in a fresh random order (the
harness); the other servers sit idle meanwhile.  Three tables read the same slices:
p99 latency, p50 latency and server CPU per request (from /proc), each as per-round
ratios to ``live`` with the 95 % interval of their mean.

Budgets from the plan: T-03 "request p99 unchanged within 10 % vs collector up"
(``blackhole`` and ``closed`` p99 <= 1.10x ``live``); T-01 "added latency vs the bare
app p50 <= 150 us, p99 <= 350 us" (read from the per-round differences to ``bare``,
printed under the p50 and p99 tables with their own verdicts).  A request that fails
(a socket error or a non-2xx answer counted by ``wrk``) is reported under the CPU table;
the plan allows none.

    python -m benchmarks.bench_dead_collector [--rounds 15] [--duration 2] [--connections 1]

or as part of ``python -m benchmarks`` (``--only dead_collector``).  Needs ``wrk``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import shutil
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from benchmarks._harness import Group, added_over_bare, run_group
from benchmarks.wire import measure, serving

VARIANTS: Final = ("bare", "live", "blackhole", "closed")
ANCHOR: Final = "live"
DEAD: Final = ("blackhole", "closed")
P99_RATIO_BUDGET: Final = 1.10  # T-03: request p99 within 10 % of the collector up
ADDED_BUDGET_US: Final = {"p50_ms": 150.0, "p99_ms": 350.0}  # T-01, over the bare app
_TARGET: Final = "benchmarks.bench_dead_collector:app"


def app() -> Any:
    """The ASGI app uvicorn serves (``--factory``): bare, or wrapped after ``setup()``
    with the exporters and endpoint the environment names."""
    from benchmarks.bench_middleware import raw_asgi

    if os.environ.get("BENCH_VARIANT") == "bare":
        return raw_asgi
    import unified_obs
    from unified_obs.asgi import ObservabilityMiddleware

    unified_obs.setup(service_name="dead-collector", log_format="json")
    return ObservabilityMiddleware(raw_asgi)


class _Answer200(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real collector

    def do_POST(self) -> None:
        """Read the export and answer an empty (valid) OTLP response."""
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@contextlib.contextmanager
def _live() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer200)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def _blackhole() -> Iterator[str]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1024)  # never accepted: connected by the kernel, never answered
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@contextlib.contextmanager
def closed_endpoint() -> Iterator[str]:
    """An endpoint on a port that was bound and released: every connection is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield f"http://127.0.0.1:{port}"


def exporter_env(endpoint: str, protocol: str = "http/protobuf") -> dict[str, str]:
    """The environment that sends every signal over OTLP (``protocol``) to ``endpoint``,
    with the caller's own ``OTEL_*``/``UNIFIED_OBS_*`` settings blanked out."""
    env = {k: v for k, v in os.environ.items() if k.startswith(("OTEL_", "UNIFIED_OBS_"))}
    blank = dict.fromkeys(env, "")  # the bench's own OTEL_* settings must not leak in
    return {
        **blank,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "otlp",
        "UNIFIED_OBS_SHUTDOWN_TIMEOUT": "1",  # the bench's teardown, not measured
    }


class _Session:
    """The four servers and every slice measured; the first group drives the load, the
    others read the same slices back in round order."""

    def __init__(self, duration: int, connections: int) -> None:
        self.duration, self.connections = duration, connections
        self.slices: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
        self.servers: dict[str, tuple[int, str]] = {}
        self._stack = contextlib.ExitStack()

    def start(self) -> None:
        """Start the collectors and the servers, then warm every server up."""
        collectors = {"live": _live, "blackhole": _blackhole, "closed": closed_endpoint}
        for variant in VARIANTS:
            endpoint = self._stack.enter_context(collectors.get(variant, closed_endpoint)())
            server = serving(variant, _TARGET, exporter_env(endpoint))
            self.servers[variant] = self._stack.enter_context(server)
        for pid, url in self.servers.values():
            measure(pid, url, self.connections, 2)  # warm-up, discarded

    def close(self) -> None:
        """Stop every server and collector."""
        self._stack.close()

    def load(self, variant: str, read: Callable[[dict[str, float]], float]) -> Callable[[], float]:
        """A case that loads ``variant`` for one slice and returns ``read(slice)``."""

        def case() -> float:
            pid, url = self.servers[variant]
            self.slices[variant].append(measure(pid, url, self.connections, self.duration))
            return read(self.slices[variant][-1])

        return case

    def replay(
        self, variant: str, read: Callable[[dict[str, float]], float]
    ) -> Callable[[], float]:
        """A case that returns ``read`` of ``variant``'s next slice, in round order."""
        calls = itertools.count()

        def case() -> float:
            return read(self.slices[variant][next(calls)])

        return case

    def added_us(self, key: str) -> str:
        """T-01's figure: per-round ``key`` latency over ``bare``, mean and 95 % interval."""
        lines = []
        for variant in ("live", *DEAD):
            pairs = zip(self.slices[variant], self.slices["bare"], strict=True)
            added = [(mine[key] - bare[key]) * 1e3 for mine, bare in pairs]
            lines.append(added_over_bare(variant, added, ADDED_BUDGET_US[key]))
        return "\n".join(lines)

    def failures(self) -> str:
        """Requests and failed requests per server over every round."""
        return ", ".join(
            f"{v}: {sum(s['failed'] for s in runs):.0f} failed of "
            f"{sum(s['requests'] for s in runs):,.0f}"
            for v, runs in self.slices.items()
        )


def _p99(piece: dict[str, float]) -> float:
    return piece["p99_ms"] / 1e3


def _p50(piece: dict[str, float]) -> float:
    return piece["p50_ms"] / 1e3


def _cpu_per_request(piece: dict[str, float]) -> float:
    return piece["cpu_s"] / max(1.0, piece["requests"])


def _groups(session: _Session) -> list[Group]:
    where = f"wrk -t1 -c{session.connections}, {session.duration} s slices"
    p99 = Group(
        f"Dead collector: request p99 latency ({where}; ns)",
        {v: session.load(v, _p99) for v in VARIANTS},
        anchor=ANCHOR,
        budgets=dict.fromkeys(DEAD, P99_RATIO_BUDGET),
        setup=session.start,
        self_timed=True,
        interval=True,
    )
    p50 = Group(
        f"Dead collector: request p50 latency ({where}; ns)",
        {v: session.replay(v, _p50) for v in VARIANTS},
        anchor=ANCHOR,
        self_timed=True,
        interval=True,
    )
    cpu = Group(
        "Dead collector: server CPU per request (ns)",
        {v: session.replay(v, _cpu_per_request) for v in VARIANTS},
        anchor=ANCHOR,
        self_timed=True,
        interval=True,
    )

    def notes() -> None:
        p99.notes = "T-01, added p99 over the bare app:\n" + session.added_us("p99_ms")
        p50.notes = "T-01, added p50 over the bare app:\n" + session.added_us("p50_ms")
        cpu.notes = f"Requests (T-01 allows no failure): {session.failures()}"

    p99.teardown = notes  # every slice is measured by then; a table prints after it
    cpu.teardown = session.close
    return [p99, p50, cpu]


def groups() -> list[Group]:
    """p99, p50 and CPU per request, read from one set of interleaved slices (none, with a
    note, where ``wrk`` is not installed)."""
    if shutil.which("wrk") is None:
        print("\nbench_dead_collector skipped: wrk is not installed (apt-get install wrk)")
        return []
    return _groups(_Session(duration=2, connections=1))


def main(argv: Sequence[str] | None = None) -> None:
    """Run the three tables with the rounds, slice and connections given."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_dead_collector")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--duration", type=int, default=2, help="seconds per slice")
    parser.add_argument("--connections", type=int, default=1)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    session = _Session(args.duration, args.connections)
    try:
        for group in _groups(session):
            run_group(group, rounds=args.rounds)
    finally:
        session.close()


if __name__ == "__main__":
    main()
