"""Request latency with a dead collector, in process (reliability plan T-01, B5).

Three child processes each serve a small Starlette app (one route, ``200 ok``) to an
``httpx.AsyncClient`` over ``httpx.ASGITransport``, so no socket, server or scheduler
hop sits between the client's clock and the app:

* ``bare``: the app alone;
* ``otlp_http``: the app behind ``ObservabilityMiddleware`` after ``setup()`` with
  traces, metrics and logs over OTLP/HTTP to a closed port (every connection refused);
* ``otlp_grpc``: the same over OTLP/gRPC (the ``[grpc]`` extra) to a closed port.

Each child runs in its own process because ``setup()`` is once per process, and keeps
its app, client and exporters for the whole run, so the dead collector's queues stay
full and its retries keep running between slices.  Every request carries a
``traceparent`` (sampled: every span is recorded and exported, i.e. dropped) and writes
its JSON access line to ``/dev/null``; the client's own per-request INFO line (httpx's
logger) is kept quiet in every child, as the bare child's unconfigured logging does.
After 500 discarded warm-up requests per child, each round sends every child one slice
of requests, in a fresh random order (the harness); the others sit idle meanwhile.
With the defaults (15 rounds of 700) each child serves 10,500 timed requests, the
plan's 10k.

T-01's budget is latency *added* over the bare app: p50 <= 150 µs and p99 <= 350 µs
(the stock OpenTelemetry ASGI middleware adds +306/+478 µs, plan B5).  The tables show
each slice's p99 and p50 with per-round ratios to ``bare``; the notes under them the
per-round difference to ``bare`` in µs with its 95 % interval and a PASS / FAIL /
WITHIN NOISE verdict, the percentiles of every timed request pooled, the requests that
failed (the plan allows none), RSS growth after warm-up (<= 20 MB; and over the second
half of the slices, which shows whether it levels off) and how long ``shutdown()`` took
with the default ``shutdown_timeout`` (<= 5 s + 0.2 s: the library's promise is the
timeout plus a small fixed margin; a dead collector uses all of the timeout).

    python -m benchmarks.bench_dead_collector_inproc [--rounds 15] [--requests 700]

or as part of ``python -m benchmarks`` (``--only dead_collector_inproc``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Final

from benchmarks._harness import Group, added_over_bare, run_group
from benchmarks.bench_dead_collector import ADDED_BUDGET_US, closed_endpoint, exporter_env

VARIANTS: Final = ("bare", "otlp_http", "otlp_grpc")
ANCHOR: Final = "bare"
_PROTOCOL: Final = {"otlp_http": "http/protobuf", "otlp_grpc": "grpc"}
WARM_UP: Final = 500
REQUESTS: Final = 700  # per child and round: 15 rounds -> 10,500 timed requests
RSS_BUDGET_MB: Final = 20.0
SHUTDOWN_BUDGET_S: Final = 5.0
SHUTDOWN_MARGIN_S: Final = 0.2
_ROOT: Final = Path(__file__).resolve().parent.parent


# --- the child: one app, one client, a line protocol on stdin / a private stdout ---------


def _app(variant: str) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def item(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/items/{item_id}", item)])
    if variant == "bare":
        return app
    import unified_obs
    from unified_obs.asgi import ObservabilityMiddleware

    unified_obs.setup(service_name="dead-collector-inproc", log_format="json")
    return ObservabilityMiddleware(app)


async def _requests(client: Any, count: int, serial: Any) -> dict[str, Any]:
    """``count`` GETs, each with a new sampled ``traceparent``: latencies (µs) and failures."""
    latencies, failed = [], 0
    for _ in range(count):
        n = next(serial)
        headers = {"traceparent": f"00-{n:032x}-{n:016x}-01"}
        start = time.perf_counter()
        try:
            response = await client.get("/items/42", headers=headers)
            failed += response.status_code != 200
        except Exception:  # anything reaching the client from the app is a failure
            failed += 1
        latencies.append((time.perf_counter() - start) * 1e6)
    return {"latencies_us": latencies, "failed": failed}


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _serve(variant: str, channel: IO[str]) -> None:
    import httpx

    app = _app(variant)
    # httpx logs every request it makes at INFO.  The bare child drops that line; after
    # setup() the stdlib bridge would render it and export it as a second log record:
    # the client's cost (about 140 µs of the p50), not the middleware's.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    transport = httpx.ASGITransport(app=app)
    serial = itertools.count(1)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        warm = await _requests(client, WARM_UP, serial)
        _reply(channel, {"ready": True, "failed": warm["failed"], "rss_mb": _rss_mb()})
        for line in sys.stdin:
            if not line.strip():
                break
            _reply(channel, {**await _requests(client, int(line), serial), "rss_mb": _rss_mb()})
    _reply(channel, {"shutdown_s": _shutdown(variant)})


def _shutdown(variant: str) -> float:
    if variant == "bare":
        return 0.0
    import unified_obs

    start = time.perf_counter()
    unified_obs.shutdown()
    return time.perf_counter() - start


def _reply(channel: IO[str], message: dict[str, Any]) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def _worker(variant: str) -> None:
    """The child's main: replies go to a copy of stdout; fd 1 itself (the access log,
    anything else printed) goes to ``/dev/null``."""
    channel = os.fdopen(os.dup(1), "w")
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 1)
    asyncio.run(_serve(variant, channel))


# --- the parent: the children, the slices, the tables ------------------------------------


class _Child:
    """One variant's child process and every slice it answered."""

    def __init__(self, variant: str, env: dict[str, str]) -> None:
        self.variant = variant
        argv = [sys.executable, "-m", "benchmarks.bench_dead_collector_inproc", "--worker"]
        environment = {**os.environ, **env}
        environment.pop("UNIFIED_OBS_SHUTDOWN_TIMEOUT", None)  # T-01 times the default's
        self.process = subprocess.Popen(
            [*argv, variant],
            cwd=_ROOT,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        ready = self._read()
        self.failed, self.rss_mb = int(ready["failed"]), [float(ready["rss_mb"])]
        self.slices: list[list[float]] = []
        self.shutdown_s = float("nan")

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.variant} child exited with {self.process.wait()}")
        result: dict[str, Any] = json.loads(line)
        return result

    def slice(self, count: int) -> list[float]:
        """Send ``count`` requests; their latencies in µs."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{count}\n")
        self.process.stdin.flush()
        answer = self._read()
        self.failed += int(answer["failed"])
        self.rss_mb.append(float(answer["rss_mb"]))
        self.slices.append([float(v) for v in answer["latencies_us"]])
        return self.slices[-1]

    def close(self) -> None:
        """Ask the child to shut down (timed there) and reap it."""
        if self.process.poll() is None:
            assert self.process.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.write("\n")
                self.process.stdin.flush()
            with contextlib.suppress(RuntimeError, ValueError):
                self.shutdown_s = float(self._read()["shutdown_s"])
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


_P50: Final = 0.50
_P99: Final = 0.99


class _Session:
    """The three children; the first group drives them, the second reads the slices back."""

    def __init__(self, requests: int) -> None:
        self.requests = requests
        self.children: dict[str, _Child] = {}
        self._stack = contextlib.ExitStack()

    def start(self) -> None:
        """A closed port per exporting child, then the children (each warms itself up)."""
        for variant in VARIANTS:
            env = {}
            if variant in _PROTOCOL:
                endpoint = self._stack.enter_context(closed_endpoint())
                env = exporter_env(endpoint, _PROTOCOL[variant])
            child = _Child(variant, env)
            self._stack.callback(child.close)
            self.children[variant] = child

    def close(self) -> None:
        """Shut every child down (each times its own ``shutdown()``)."""
        self._stack.close()

    def load(self, variant: str, q: float) -> Callable[[], float]:
        """A case that sends ``variant`` one slice and returns its ``q`` quantile (s)."""

        def case() -> float:
            return _percentile(self.children[variant].slice(self.requests), q) / 1e6

        return case

    def replay(self, variant: str, q: float) -> Callable[[], float]:
        """A case that returns the ``q`` quantile (s) of ``variant``'s next slice."""
        calls = itertools.count()

        def case() -> float:
            return _percentile(self.children[variant].slices[next(calls)], q) / 1e6

        return case

    def added_us(self, q: float, budget: float) -> str:
        """T-01's figure: per-round ``q`` latency over ``bare``, mean, 95 % interval, verdict."""
        bare = self.children[ANCHOR]
        lines = []
        for variant in VARIANTS[1:]:
            pairs = zip(self.children[variant].slices, bare.slices, strict=True)
            added = [_percentile(mine, q) - _percentile(base, q) for mine, base in pairs]
            pooled = _pooled(self.children[variant], q) - _pooled(bare, q)
            lines.append(
                f"{added_over_bare(variant, added, budget)} (all requests pooled: {pooled:+.0f} µs)"
            )
        return "\n".join(lines)

    def health(self) -> str:
        """Failed requests, RSS growth after warm-up and ``shutdown()`` time per child."""
        lines = []
        for variant, child in self.children.items():
            growth = child.rss_mb[-1] - child.rss_mb[0]
            late = child.rss_mb[-1] - child.rss_mb[len(child.rss_mb) // 2]
            timed = sum(len(s) for s in child.slices)
            line = (
                f"- {variant}: {child.failed} failed of {timed + WARM_UP:,}; RSS "
                f"{child.rss_mb[0]:.0f} MB after warm-up, {growth:+.1f} MB since "
                f"({'PASS' if growth <= RSS_BUDGET_MB else 'FAIL'} <= {RSS_BUDGET_MB:g} MB; "
                f"{late:+.1f} MB over the second half of the slices)"
            )
            if variant in _PROTOCOL:
                ok = child.shutdown_s <= SHUTDOWN_BUDGET_S + SHUTDOWN_MARGIN_S
                line += (
                    f"; shutdown() {child.shutdown_s:.3f} s ({'PASS' if ok else 'FAIL'} "
                    f"<= {SHUTDOWN_BUDGET_S:g} s + {SHUTDOWN_MARGIN_S:g} s)"
                )
            lines.append(line)
        return "\n".join(lines)


def _pooled(child: _Child, q: float) -> float:
    return _percentile([v for s in child.slices for v in s], q)


def _groups(session: _Session) -> list[Group]:
    where = f"httpx ASGITransport, {session.requests} requests per slice; ns"
    p99 = Group(
        f"Dead collector in process: request p99 latency ({where})",
        {v: session.load(v, _P99) for v in VARIANTS},
        anchor=ANCHOR,
        setup=session.start,
        self_timed=True,
        interval=True,
    )
    p50 = Group(
        f"Dead collector in process: request p50 latency ({where})",
        {v: session.replay(v, _P50) for v in VARIANTS},
        anchor=ANCHOR,
        self_timed=True,
        interval=True,
    )

    def p99_notes() -> None:
        budget = ADDED_BUDGET_US["p99_ms"]
        p99.notes = "T-01, added p99 over the bare app:\n" + session.added_us(_P99, budget)

    def p50_notes() -> None:
        session.close()  # the children time their shutdown() now
        budget = ADDED_BUDGET_US["p50_ms"]
        p50.notes = (
            "T-01, added p50 over the bare app:\n"
            + session.added_us(_P50, budget)
            + "\n\nRequests, memory and shutdown (T-01):\n"
            + session.health()
        )

    p99.teardown = p99_notes  # every slice is measured by then; a table prints after it
    p50.teardown = p50_notes
    return [p99, p50]


def groups() -> list[Group]:
    """p99 and p50, read from one set of interleaved slices."""
    return _groups(_Session(REQUESTS))


def main(argv: Sequence[str] | None = None) -> None:
    """Run both tables with the rounds and slice size given (or be a ``--worker`` child)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_dead_collector_inproc")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=REQUESTS, help="per child and round")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker)
        return
    session = _Session(args.requests)
    try:
        for group in _groups(session):
            run_group(group, rounds=args.rounds)
    finally:
        session.close()


if __name__ == "__main__":
    main()
