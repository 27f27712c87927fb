"""One deadline for all of ``shutdown(timeout)`` and ``force_flush(timeout)`` (issue #24).

The ASGI middleware leaves each request's recording (span end, duration metric, access
line) for the event loop's next turn; a caller that shuts down from inside the loop
(ASGI lifespan shutdown, the in-process benchmark) can leave up to ``MAX_PENDING`` of
them waiting.  Recording them is part of the call and must come out of its deadline,
not be added to it: measured before the fix, 4,000 waiting requests made
``shutdown(timeout=0.5)`` return after 0.9 s with a dead collector.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any, Literal

import pytest
from opentelemetry import trace

import unified_obs as obs
from tests.otlp_receiver import dead_collector
from unified_obs._http.next_turn import defer, run_pending
from unified_obs.asgi import ObservabilityMiddleware

TIMEOUT = 0.5
MARGIN = 0.2
"""What a call may take past its timeout: the fixed cost of returning, not the work."""
_FILL = 3_000  # spans and log records: more than the queues (2,048) and a batch hold
_WAITING = 4_000  # requests left for the loop's next turn (MAX_PENDING is 4,096)
_GET = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/items/42",
    "raw_path": b"/items/42",
    "query_string": b"",
    "root_path": "",
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 80),
}


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    return None


async def _leave_requests_waiting(count: int) -> None:
    """Serve ``count`` sampled requests without letting the loop turn: their recording
    waits for the next turn (or for a flush or shutdown to do it)."""
    app = ObservabilityMiddleware(_app)
    for n in range(1, count + 1):
        traceparent = f"00-{n:032x}-{n:016x}-01".encode()
        scope = {**_GET, "headers": [(b"host", b"test"), (b"traceparent", traceparent)]}
        await app(scope, _receive, _send)


def _fill_queues() -> None:
    tracer, log = trace.get_tracer("load"), obs.get_logger("load")
    for i in range(_FILL):
        with tracer.start_as_current_span("item"):
            log.info("item", i=i)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
@pytest.mark.parametrize("kind", ["closed", "blackhole"])
def test_flush_and_shutdown_keep_their_deadline_with_requests_waiting(
    kind: Literal["closed", "blackhole"],
    protocol: Literal["http/protobuf", "grpc"],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every signal over OTLP to a dead collector, the span and log queues full and 4,000
    requests waiting for the loop's next turn: ``force_flush(0.5)`` and then
    ``shutdown(timeout=0.5)``, called from inside the loop, each return within 0.5 s +
    0.2 s, report the signals as not ok, and ``ShutdownResult.elapsed`` is the whole call."""

    async def scenario() -> tuple[float, obs.ShutdownResult, float, obs.ShutdownResult]:
        _fill_queues()
        await _leave_requests_waiting(_WAITING)
        start = time.monotonic()
        flushed = telemetry.force_flush(TIMEOUT)
        flush_took = time.monotonic() - start
        await _leave_requests_waiting(_WAITING)
        start = time.monotonic()
        result = obs.shutdown(timeout=TIMEOUT)
        return flush_took, flushed, time.monotonic() - start, result

    with dead_collector(kind) as endpoint:
        telemetry = obs.setup(
            environ={}, service_name="deadline", otlp_endpoint=endpoint,
            otlp_protocol=protocol, traces_exporter="otlp", metrics_exporter="otlp",
            logs_exporter="otlp", log_format="json", handle_signals=False,
        )  # fmt: skip
        flush_took, flushed, took, result = asyncio.run(scenario())
    capsys.readouterr()  # the access lines
    took_s = f"force_flush({TIMEOUT}) took {flush_took:.3f} s, shutdown {took:.3f} s"
    assert flush_took <= TIMEOUT + MARGIN, took_s
    assert took <= TIMEOUT + MARGIN, took_s
    assert not flushed.ok, flushed
    assert took - MARGIN <= result.elapsed <= took, (result.elapsed, took)
    assert result.outcomes["traces"] in ("timeout", "failed"), result
    assert result.outcomes["logs"] in ("timeout", "failed"), result
    assert not result.ok


@pytest.mark.asyncio
async def test_work_left_at_the_deadline_runs_at_the_loops_next_turn() -> None:
    """``run_pending(deadline)`` with the deadline passed runs nothing; what it left runs
    at the loop's next turn, each item once, in order."""
    ran: list[int] = []
    for n in range(3):
        defer(functools.partial(ran.append, n))
    run_pending(time.monotonic())
    assert ran == []
    await asyncio.sleep(0)
    assert ran == [0, 1, 2]
    run_pending()
    assert ran == [0, 1, 2]
