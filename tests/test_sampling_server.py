"""The rate-limited sampler in a real server: uvicorn (Starlette under the ASGI middleware)
in a subprocess, spans over OTLP to the test's receiver, a client on loopback sending
more than ten times the budget."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.trace import TraceState

from tests.otlp_receiver import attributes, otlp_receiver
from unified_obs.tracing._tail_keep import PROMOTED_REASON
from unified_obs.tracing._threshold import MAX_THRESHOLD, parse_threshold, randomness

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 20  # root traces per second
LOAD_SECONDS = 6.0
WARM_UP = 1.0  # the first second is left out: the bucket starts half full
MAX_REQUESTS = 20_000  # bounds the load loop whatever the machine's speed


def _environment(endpoint: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "UNIFIED_OBS_"))}
    environ.update(
        OTEL_SERVICE_NAME="sampled",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_BSP_MAX_QUEUE_SIZE="100000",
        OTEL_TRACES_SAMPLER="parentbased_ratelimited",
        OTEL_TRACES_SAMPLER_ARG=str(BUDGET),
        UNIFIED_OBS_LOG_LEVEL="error",
        UNIFIED_OBS_HANDLE_SIGNALS="false",
        PYTHONPATH=str(ROOT),
    )
    return environ


def _wait_live(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "server exited"
        try:
            if httpx.get(url + "/livez", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("server did not come up")


def _load(url: str) -> tuple[int, int, int]:
    """Requests as fast as one client sends them for LOAD_SECONDS; returns the wall-clock
    nanoseconds of the first and the last request, and how many were sent."""
    sent = 0
    with httpx.Client(base_url=url, timeout=10) as client:
        first = time.time_ns()
        end = time.monotonic() + LOAD_SECONDS
        while time.monotonic() < end and sent < MAX_REQUESTS:
            assert client.get(f"/items/{sent}").status_code == 200
            sent += 1
        last = time.time_ns()
    return first, last, sent


@contextmanager
def _uvicorn(environment: dict[str, str]) -> Iterator[str]:
    """The Starlette test app under uvicorn in a subprocess; yields its URL, and on exit
    stops it with SIGTERM (which flushes every span) before the caller reads spans."""
    listener = socket.socket()
    # accepted sockets inherit it: without, Nagle holds each response ~40 ms (--fd)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    command = [
        sys.executable, "-m", "uvicorn", "tests.test_servers_apps:starlette_app",
        "--factory", "--fd", str(listener.fileno()), "--no-access-log",
        "--log-level", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(command, pass_fds=[listener.fileno()], cwd=ROOT, env=environment)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        _wait_live(url, process)
        yield url
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        listener.close()


def test_rate_limited_sampler_holds_its_budget_under_ten_times_the_load() -> None:
    """At more than 10x a 20 roots/s budget, the root spans the server keeps per second
    (after the first second) stay within 10 % of the budget, and each kept root carries
    its consistent threshold in ``ot=th:``, which its trace id's randomness clears."""
    with otlp_receiver() as (endpoint, received):
        with _uvicorn(_environment(endpoint)) as url:
            first, last, sent = _load(url)
        roots = _roots(received.spans(), first)
    seconds = (last - first) / 1e9
    assert sent / seconds >= 10 * BUDGET, f"the client sent only {sent / seconds:.0f}/s"
    start = first + int(WARM_UP * 1e9)
    kept = [span for span in roots if span.start_time_unix_nano >= start]
    per_second = len(kept) / ((last - start) / 1e9)
    assert 0.9 * BUDGET <= per_second <= 1.1 * BUDGET, (per_second, sent / seconds)
    for span in roots:
        threshold = parse_threshold(TraceState.from_header([span.trace_state]))
        assert threshold is not None
        assert threshold < MAX_THRESHOLD
        assert randomness(int.from_bytes(span.trace_id, "big")) >= threshold


def _roots(spans: list[tuple[dict[str, Any], Any]], first: int) -> list[Any]:
    """The server's root spans of the load's requests."""
    return [
        span
        for _, span in spans
        if span.kind == 2  # SPAN_KIND_SERVER
        and not span.parent_span_id
        and span.start_time_unix_nano >= first
        and span.name.endswith("/items/{item_id}")
    ]


def test_failed_requests_are_kept_though_the_head_sampler_drops_everything() -> None:
    """With a 0 % head ratio and ``UNIFIED_OBS_TRACES_KEEP_ERRORS=true``, the server
    exports the SERVER span of every request that failed (500), marked
    ``sampling.promoted_reason=error``, and none of the successful ones."""
    with otlp_receiver() as (endpoint, received):
        environment = _environment(endpoint)
        environment.update(
            OTEL_TRACES_SAMPLER="parentbased_traceidratio",
            OTEL_TRACES_SAMPLER_ARG="0",
            UNIFIED_OBS_TRACES_KEEP_ERRORS="true",
        )
        with _uvicorn(environment) as url, httpx.Client(base_url=url, timeout=10) as client:
            for n in range(20):
                assert client.get(f"/items/{n}").status_code == 200
            for _ in range(3):  # uvicorn closes the connection after an app's exception
                assert httpx.get(url + "/boom", timeout=10).status_code == 500
        spans = [span for _, span in received.spans()]
    assert len(spans) == 3
    for span in spans:
        assert span.name.endswith("/boom")
        assert attributes(span.attributes)[PROMOTED_REASON] == "error"
