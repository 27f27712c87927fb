"""Work left for the event loop's next turn (``unified_obs._http.next_turn``) and the ASGI
middleware's use of it: each request is recorded once, in its own context, with the
duration it had when its last body chunk was sent, and nothing pending is missed by a
reader, a flush or a shutdown."""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import time
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import unified_obs
from unified_obs._http import next_turn
from unified_obs._http.next_turn import MAX_PENDING, defer, run_pending
from unified_obs.asgi import ObservabilityMiddleware
from unified_obs.testing import capture

_var: contextvars.ContextVar[str] = contextvars.ContextVar("_var", default="unset")
_GET = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _server_send(message: Any) -> None:
    return None


def _answering(status: int) -> Any:
    """An ASGI app that answers every request with ``status`` and an empty body."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


def _setup_with_own_exporter() -> tuple[unified_obs.Telemetry, InMemorySpanExporter]:
    """setup() without exporters, plus an SDK exporter of the test's own (read directly,
    not through ``testing``, which would catch up first)."""
    telemetry = unified_obs.setup(
        environ={}, service_name="t", traces_exporter="none", metrics_exporter="none",
        logs_exporter="none", handle_signals=False,
    )  # fmt: skip
    exporter = InMemorySpanExporter()
    assert telemetry.tracer_provider is not None
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return telemetry, exporter


def _recorder(seen: list[str], name: str) -> Any:
    def work() -> None:
        seen.append(f"{name}:{_var.get()}")

    return work


@pytest.mark.asyncio
async def test_work_runs_at_the_next_turn_in_the_context_it_was_handed_over_in() -> None:
    """Nothing runs while the handing task goes on; at the next turn each item runs once,
    seeing the context variables as they were when it was handed over."""
    seen: list[str] = []
    _var.set("first")
    defer(_recorder(seen, "a"))
    _var.set("second")
    defer(_recorder(seen, "b"))
    assert seen == []
    await asyncio.sleep(0)
    assert seen == ["a:first", "b:second"]
    await asyncio.sleep(0)
    assert seen == ["a:first", "b:second"]


@pytest.mark.asyncio
async def test_one_turn_runs_everything_handed_over_in_the_turn_before_as_one_batch() -> None:
    """Work handed over before and after another callback is scheduled runs together,
    before that callback: one batch per turn, not one callback per item."""
    seen: list[str] = []
    loop = asyncio.get_running_loop()
    defer(_recorder(seen, "a"))
    loop.call_soon(seen.append, "other")
    defer(_recorder(seen, "b"))
    await asyncio.sleep(0)
    assert seen == ["a:unset", "b:unset", "other"]


@pytest.mark.asyncio
async def test_the_running_loop_is_looked_up_once_per_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the first hand-over of a turn asks for the running loop and schedules the
    turn's run; the rest of the turn joins it, and the next turn asks again."""
    lookups: list[object] = []
    real = asyncio.get_running_loop

    def counting() -> asyncio.AbstractEventLoop:
        lookups.append(None)
        return real()

    monkeypatch.setattr(asyncio, "get_running_loop", counting)
    seen: list[str] = []
    for name in "abcdefgh":
        defer(_recorder(seen, name))
    assert len(lookups) == 1
    await asyncio.sleep(0)
    assert len(seen) == 8
    defer(_recorder(seen, "next turn"))
    assert len(lookups) == 2
    await asyncio.sleep(0)
    assert seen[-1] == "next turn:unset"


def test_without_a_running_loop_work_runs_at_once() -> None:
    """A thread with no running event loop has no next turn: the work runs in the call."""
    seen: list[str] = []
    defer(_recorder(seen, "now"))
    assert seen == ["now:unset"]
    assert not next_turn._pending


@pytest.mark.asyncio
async def test_a_task_that_never_lets_the_loop_turn_keeps_at_most_max_pending() -> None:
    """Past ``MAX_PENDING`` waiting items the work runs at once, so memory stays bounded
    for a caller that never yields."""
    seen: list[str] = []
    work = _recorder(seen, "w")
    for _ in range(MAX_PENDING * 2 + 10):
        defer(work)
        assert len(next_turn._pending) <= MAX_PENDING + 1
    assert len(seen) >= MAX_PENDING
    await asyncio.sleep(0)
    assert len(seen) == MAX_PENDING * 2 + 10


@pytest.mark.asyncio
async def test_run_pending_from_another_thread_runs_each_item_exactly_once() -> None:
    """A reader in another thread (a test client's thread) may catch up; the loop's own
    turn then finds nothing left to run twice."""
    seen: list[str] = []
    for name in "abc":
        defer(_recorder(seen, name))
    reader = threading.Thread(target=run_pending)
    reader.start()
    reader.join()
    assert seen == ["a:unset", "b:unset", "c:unset"]
    await asyncio.sleep(0)
    assert seen == ["a:unset", "b:unset", "c:unset"]


def _leave_pending_in_a_closed_loop(work: Any) -> None:
    """Hand ``work`` over, then stop and close the loop before its next turn."""
    loop = asyncio.new_event_loop()
    try:

        def hand_over_and_stop() -> None:
            defer(work)
            loop.stop()

        loop.call_soon(hand_over_and_stop)
        loop.run_forever()
    finally:
        loop.close()


def test_work_left_by_a_closed_loop_runs_with_the_next_loop_of_the_thread() -> None:
    """A loop closed before its next turn drops its scheduled callback, not the work:
    the next loop in the thread schedules its own turn and runs both."""
    seen: list[str] = []
    _leave_pending_in_a_closed_loop(_recorder(seen, "old"))
    assert seen == []

    async def later() -> None:
        defer(_recorder(seen, "new"))
        await asyncio.sleep(0)

    asyncio.run(later())
    assert seen == ["old:unset", "new:unset"]


def test_a_forked_child_does_not_run_the_parents_pending_work() -> None:
    """The parent records its own requests; a child forked while work waits starts with
    none (else both processes would write the same span and access line)."""
    seen: list[str] = []
    _leave_pending_in_a_closed_loop(_recorder(seen, "parent"))
    pid = os.fork()
    if pid == 0:  # child: report through the exit status only
        ok = False
        try:
            run_pending()
            ok = seen == [] and not next_turn._pending
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    run_pending()
    assert seen == ["parent:unset"]


@pytest.mark.asyncio
async def test_the_span_ends_when_the_last_chunk_was_sent_not_when_it_is_recorded() -> None:
    """The recording waits for the next turn, the duration does not: the span ends no
    later than the last ``send`` returned, and the access line gives the same duration."""
    sent: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        sent.append(time.time_ns())
        time.sleep(0.02)  # a gap, not a wait: recording at the turn would end later

    with capture() as cap:
        await ObservabilityMiddleware(app)(dict(_GET), _receive, _server_send)
        span = cap.span("GET")
        (line,) = [r for r in cap.logs if r["event"] == "http.request"]
    assert span.end_time is not None
    assert span.start_time is not None
    assert span.end_time <= sent[0]
    assert line["duration_ms"] == pytest.approx((span.end_time - span.start_time) / 1e6, abs=0.002)
    assert line["request_id"]
    assert line["span_id"] == format(span.context.span_id, "016x")


@pytest.mark.asyncio
async def test_force_flush_records_requests_still_waiting_for_the_loop() -> None:
    """``force_flush()`` catches up first: a request answered in this very turn reaches
    the exporter (read here straight from an SDK processor, not through ``testing``)."""
    telemetry, exporter = _setup_with_own_exporter()

    await ObservabilityMiddleware(_answering(204))(dict(_GET), _receive, _server_send)
    assert exporter.get_finished_spans() == ()
    telemetry.force_flush(timeout=5)
    assert [s.name for s in exporter.get_finished_spans()] == ["GET"]


@pytest.mark.asyncio
async def test_an_error_response_is_still_recorded_before_the_app_returns() -> None:
    """Only plain responses wait: a 5xx waits for the app instead (its exception, if it
    raises after the error page, belongs on the span), and is recorded when it returns."""
    _, exporter = _setup_with_own_exporter()

    await ObservabilityMiddleware(_answering(503))(dict(_GET), _receive, _server_send)
    assert [s.status.is_ok for s in exporter.get_finished_spans()] == [False]


@pytest.mark.asyncio
async def test_metrics_value_counts_a_request_answered_in_this_very_turn() -> None:
    """``metrics.value`` catches up first, like a scrape: the duration histogram already
    counts a request whose recording still waits for the loop."""
    with capture():
        await ObservabilityMiddleware(_answering(204))(dict(_GET), _receive, _server_send)
        assert len(next_turn._pending) == 1
        labels = {
            "http.request.method": "GET",
            "http.route": "",
            "http.response.status_code": "204",
            "url.scheme": "http",
            "error.type": "",
            "network.protocol.version": "1.1",
        }
        count = unified_obs.metrics.value("http.server.request.duration", **labels)
    assert count == 1


@pytest.mark.asyncio
async def test_clear_forgets_requests_still_waiting_to_be_recorded() -> None:
    """``Captured.clear()`` records what waits before forgetting, so a request answered
    before the clear never shows up after it."""
    with capture() as cap:
        await ObservabilityMiddleware(_answering(204))(dict(_GET), _receive, _server_send)
        cap.clear()
        await asyncio.sleep(0)
        assert list(cap.spans) == []
        assert [r for r in cap.logs if r["event"] == "http.request"] == []
