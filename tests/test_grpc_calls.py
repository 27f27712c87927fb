"""gRPC interceptors in the situations around a call: log lines and bound fields, crashes,
deadlines, cancellation, futures, exclusions, failures of our own, no setup, concurrency."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

import unified_obs as obs
from tests.test_grpc_support import (
    METHODS,
    aio_pair,
    attrs,
    call_aio,
    call_sync,
    path,
    spans_of,
    sync_pair,
    sync_server,
    wait_async,
    wait_until,
)
from unified_obs.grpc import server_interceptor
from unified_obs.lifecycle import inflight
from unified_obs.testing import capture


def test_sync_call_log_line_and_bound_fields() -> None:
    """One ``grpc.server.call`` line per call with the status and duration; the handler's
    own lines carry ``rpc.method`` and the server span's trace id."""
    log = obs.get_logger("handler")

    def handler(request: bytes, context: Any) -> bytes:
        log.info("handling")
        return request

    generic = grpc.method_handlers_generic_handler(
        "test.Logged", {"Call": grpc.unary_unary_rpc_method_handler(handler)}
    )
    with capture(handle_signals=False) as cap:
        from concurrent import futures

        server = grpc.server(futures.ThreadPoolExecutor(2), interceptors=[server_interceptor()])
        server.add_generic_rpc_handlers((generic,))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                channel.unary_unary("/test.Logged/Call")(b"x", timeout=5)
        finally:
            server.stop(None)
        span = spans_of(cap, SpanKind.SERVER)[0]
        trace_id = format(span.context.trace_id, "032x")
        handling = [r for r in cap.logs if r["event"] == "handling"]
        calls = [r for r in cap.logs if r["event"] == "grpc.server.call"]
        assert len(handling) == len(calls) == 1
        assert handling[0]["rpc.method"] == "test.Logged/Call"
        assert handling[0]["trace_id"] == calls[0]["trace_id"] == trace_id
        assert calls[0]["status"] == "OK"
        assert calls[0]["level"] == "info"
        assert calls[0]["duration_ms"] >= 0
        assert obs.bound_fields() == {}


@pytest.mark.asyncio
async def test_aio_log_calls_can_be_turned_off_and_errors_log_at_error() -> None:
    """``log_calls=False`` drops the per-call line (spans stay); with it on, a crash logs at
    error level with the exception, a status the client caused at info (as HTTP 4xx)."""
    with capture(handle_signals=False) as cap:
        async with aio_pair(log_calls=False) as channel:
            await call_aio(channel, "UnaryUnary", b"echo")
        assert not [r for r in cap.logs if r["event"] == "grpc.server.call"]
        assert len(spans_of(cap, SpanKind.SERVER)) == 1
        async with aio_pair() as channel:
            await call_aio(channel, "UnaryUnary", b"raise")
            await call_aio(channel, "UnaryStream", b"abort:NOT_FOUND:x")
        lines = [r for r in cap.logs if r["event"] == "grpc.server.call"]
        assert [line["level"] for line in lines] == ["error", "info"]
        assert lines[0]["error"] == "ValueError"
        assert "exception" in lines[0]
        assert lines[1]["status"] == "NOT_FOUND"
        assert "error" not in lines[1]  # NOT_FOUND is not a server failure


def _exception_events(span: ReadableSpan) -> list[str]:
    return [str(e.attributes.get("exception.type")) for e in span.events if e.attributes]


@pytest.mark.parametrize("method", METHODS)
def test_sync_handler_exception_is_recorded_and_reraised(method: str) -> None:
    """A crashing handler: grpc's own UNKNOWN answer reaches the client, the server span is
    Error with the exception event and ``error.type`` = the exception class."""
    with capture(handle_signals=False) as cap, sync_pair() as channel:
        code, details, _, _ = call_sync(channel, method, b"raise")
        assert code is grpc.StatusCode.UNKNOWN
        assert "boom" in str(details)
        wait_until(lambda: len(spans_of(cap, SpanKind.SERVER)) == 1)
        (server,) = spans_of(cap, SpanKind.SERVER)
        assert server.status.status_code is StatusCode.ERROR
        assert attrs(server)["error.type"] == "ValueError"
        assert _exception_events(server) == ["ValueError"]


def test_sync_deadline_and_cancellation_are_recorded() -> None:
    """A client deadline: both spans DEADLINE_EXCEEDED.  A cancelled stream: both spans
    CANCELLED (the server's once gRPC drops the abandoned stream)."""
    with capture(handle_signals=False) as cap, sync_pair() as channel:
        code, *_ = call_sync(channel, "UnaryUnary", b"sleep:0.5", timeout=0.1)
        assert code is grpc.StatusCode.DEADLINE_EXCEEDED
        stream = channel.unary_stream(path("UnaryStream"))(b"sleep:0.3", timeout=5)
        assert next(stream) == b"item0"
        stream.cancel()
        wait_until(lambda: len(cap.spans) == 4)
        codes = {(s.kind, attrs(s)["rpc.method"]): attrs(s)["rpc.response.status_code"]
                 for s in cap.spans}  # fmt: skip
        assert codes == {
            (SpanKind.CLIENT, "test.Echo/UnaryUnary"): "DEADLINE_EXCEEDED",
            (SpanKind.SERVER, "test.Echo/UnaryUnary"): "DEADLINE_EXCEEDED",
            (SpanKind.CLIENT, "test.Echo/UnaryStream"): "CANCELLED",
            (SpanKind.SERVER, "test.Echo/UnaryStream"): "CANCELLED",
        }
        wait_until(lambda: inflight.count == 0)


@pytest.mark.asyncio
async def test_aio_deadline_cancellation_and_never_iterated_streams_end() -> None:
    """grpc.aio: deadline, a cancelled stream and a stream never iterated all end exactly one
    span per side with the right code."""
    with capture(handle_signals=False) as cap:
        async with aio_pair() as channel:
            code, *_ = await call_aio(channel, "StreamUnary", b"sleep:0.5", timeout=0.1)
            assert code is grpc.StatusCode.DEADLINE_EXCEEDED
            stream = channel.stream_stream(path("StreamStream"))(_one(b"sleep:0.5"), timeout=5)
            assert await stream.read() == b"item0"
            stream.cancel()
            untouched = channel.unary_stream(path("UnaryStream"))(b"sleep:0.5", timeout=5)
            await asyncio.sleep(0.05)
            untouched.cancel()
            await wait_async(lambda: len(cap.spans) == 6)
        got = sorted(
            (s.kind.name, s.name, str(attrs(s)["rpc.response.status_code"])) for s in cap.spans
        )
        assert got == [
            ("CLIENT", "test.Echo/StreamStream", "CANCELLED"),
            ("CLIENT", "test.Echo/StreamUnary", "DEADLINE_EXCEEDED"),
            ("CLIENT", "test.Echo/UnaryStream", "CANCELLED"),
            ("SERVER", "test.Echo/StreamStream", "CANCELLED"),
            ("SERVER", "test.Echo/StreamUnary", "DEADLINE_EXCEEDED"),
            ("SERVER", "test.Echo/UnaryStream", "CANCELLED"),
        ]
        assert inflight.count == 0


async def _one(item: bytes) -> AsyncIterator[bytes]:
    yield item


def test_sync_future_calls_and_inflight_count() -> None:
    """``.future()`` calls end their client span when they complete; the in-flight count
    covers a running call and returns to zero."""
    with capture(handle_signals=False) as cap, sync_pair() as channel:
        future = channel.unary_unary(path("UnaryUnary")).future(b"sleep:0.3", timeout=5)
        wait_until(lambda: inflight.count >= 2)  # the client and the server call
        assert future.result() == b"slept"
        wait_until(lambda: len(cap.spans) == 2 and inflight.count == 0)
        assert {s.kind for s in cap.spans} == {SpanKind.CLIENT, SpanKind.SERVER}


def test_health_and_reflection_are_excluded_by_default() -> None:
    """Calls to ``grpc.health.v1.Health`` make no span, metric or log line; an explicit
    ``excluded_services`` replaces the default."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from unified_obs.grpc import add_health_servicer

    for excluded, expected in ((None, 0), ((), 1)):
        with capture(handle_signals=False) as cap:
            cap.telemetry.health.mark_started()
            interceptor = (
                server_interceptor()
                if excluded is None
                else server_interceptor(excluded_services=excluded)
            )
            with sync_server([interceptor]) as (server, target):
                add_health_servicer(server, cap.telemetry)
                with grpc.insecure_channel(target) as channel:
                    stub = health_pb2_grpc.HealthStub(channel)
                    answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            assert len(cap.spans) == expected
            assert len([r for r in cap.logs if r["event"] == "grpc.server.call"]) == expected


def test_failures_inside_the_interceptor_never_reach_the_application(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If starting a span blows up, every call still succeeds unobserved."""
    from unified_obs.grpc import _observer

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("broken telemetry")

    monkeypatch.setattr(_observer.Observer, "start", broken)
    with capture(handle_signals=False), sync_pair() as channel:
        results = [call_sync(channel, m, b"echo") for m in METHODS]
    assert [r[0] for r in results] == [grpc.StatusCode.OK] * 4
    assert [r[2][-1] for r in results] == [b"echo"] * 4


@pytest.mark.asyncio
async def test_aio_failures_inside_the_interceptor_never_reach_the_application(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """grpc.aio: the same — a broken observer leaves every call shape working."""
    from unified_obs.grpc import _observer

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("broken telemetry")

    monkeypatch.setattr(_observer.Observer, "start", broken)
    with capture(handle_signals=False):
        async with aio_pair() as channel:
            results = [await call_aio(channel, m, b"echo") for m in METHODS]
    assert [r[0] for r in results] == [grpc.StatusCode.OK] * 4


def test_interceptors_are_no_ops_before_setup() -> None:
    """Without ``setup()`` calls work and nothing is recorded (non-recording spans)."""
    with sync_pair() as channel:
        results = [call_sync(channel, m, b"trace") for m in METHODS]
    assert [r[0] for r in results] == [grpc.StatusCode.OK] * 4
    assert inflight.count == 0


def test_concurrent_calls_keep_their_own_context() -> None:
    """Calls from many threads at once: every server span has its own client parent."""
    with capture(handle_signals=False) as cap, sync_pair() as channel:
        answers: list[bytes] = []

        def worker() -> None:
            for _ in range(5):
                answers.extend(call_sync(channel, "UnaryUnary", b"trace")[2])

        threads = [threading.Thread(target=worker) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        wait_until(lambda: len(cap.spans) == 60)
        servers = {s.context.trace_id: s for s in spans_of(cap, SpanKind.SERVER)}
        clients = {s.context.span_id: s for s in spans_of(cap, SpanKind.CLIENT)}
        assert len(servers) == 30
        for span in servers.values():
            assert span.parent is not None
            assert span.parent.span_id in clients
        assert sorted(answers) == sorted(format(t, "032x").encode() for t in servers)


@pytest.mark.asyncio
async def test_log_calls_errors_logs_only_failed_calls() -> None:
    """``log_calls="errors"``: no line for OK calls, one for each call that did not end OK."""
    with capture(handle_signals=False) as cap:
        async with aio_pair(log_calls="errors") as channel:
            await call_aio(channel, "UnaryUnary", b"echo")
            await call_aio(channel, "UnaryStream", b"echo")
            await call_aio(channel, "StreamUnary", b"abort:NOT_FOUND:x")
        lines = [r for r in cap.logs if r["event"] == "grpc.server.call"]
        assert [line["status"] for line in lines] == ["NOT_FOUND"]
        assert len(spans_of(cap, SpanKind.SERVER)) == 3


def test_clients_respect_suppressed_instrumentation() -> None:
    """Inside a suppressed context (an exporter's own calls) the client makes no span and
    injects nothing; the call itself is unaffected."""
    from opentelemetry import context as otel_context
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

    with capture(handle_signals=False) as cap, sync_pair() as channel:
        token = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            result = call_sync(channel, "UnaryUnary", b"trace")
        finally:
            otel_context.detach(token)
        wait_until(lambda: len(cap.spans) == 1)
        (server,) = cap.spans
        assert server.kind is SpanKind.SERVER
        assert server.parent is None  # nothing was injected
        assert result[0] is grpc.StatusCode.OK
