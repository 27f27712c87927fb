"""gRPC interceptors against a real grpcio server and client on 127.0.0.1, sync and aio,
all four call shapes: spans, propagation, metrics, logs and untouched statuses."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

import unified_obs as obs
from tests.test_grpc_support import (
    METHODS,
    aio_server,
    call_aio,
    call_sync,
    path,
    sync_server,
)
from unified_obs import metrics
from unified_obs.grpc import (
    aio_client_interceptor,
    aio_server_interceptor,
    client_interceptor,
    server_interceptor,
)
from unified_obs.grpc._common import SERVER_ERROR_CODES
from unified_obs.lifecycle import inflight
from unified_obs.testing import Captured, capture

Result = tuple[grpc.StatusCode, str | None, list[bytes], tuple[Any, ...]]


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` (bounded) until it holds; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def attrs(span: ReadableSpan) -> dict[str, Any]:
    """The span's attributes as a plain dict."""
    return dict(span.attributes or {})


def spans_of(cap: Captured, kind: SpanKind) -> list[ReadableSpan]:
    """Finished spans of ``kind``."""
    return [span for span in cap.spans if span.kind is kind]


@contextmanager
def sync_pair(**options: Any) -> Iterator[grpc.Channel]:
    """A sync server with our interceptor and a channel with ours (options -> server)."""
    with sync_server([server_interceptor(**options)]) as (_, target):
        channel = grpc.intercept_channel(
            grpc.insecure_channel(target), client_interceptor(target=target)
        )
        try:
            yield channel
        finally:
            channel.close()


@asynccontextmanager
async def aio_pair(**options: Any) -> AsyncIterator[Any]:
    """The grpc.aio twin of :func:`sync_pair`."""
    async with aio_server([aio_server_interceptor(**options)]) as (_, target):
        interceptors = aio_client_interceptor(target=target)
        async with grpc.aio.insecure_channel(target, interceptors=interceptors) as channel:
            yield channel


def assert_parented(cap: Captured, method: str, answer: list[bytes]) -> None:
    """One client and one server span for ``method``, the server's parent is the client."""
    wait_until(lambda: len(cap.spans) >= 2)
    (client,) = spans_of(cap, SpanKind.CLIENT)
    (server,) = spans_of(cap, SpanKind.SERVER)
    assert client.name == server.name == f"test.Echo/{method}"
    assert server.parent is not None
    assert server.parent.span_id == client.context.span_id
    assert server.context.trace_id == client.context.trace_id
    assert answer[-1] == format(server.context.trace_id, "032x").encode()
    assert attrs(server)["rpc.system.name"] == "grpc"
    assert attrs(server)["rpc.method"] == f"test.Echo/{method}"
    assert attrs(server)["rpc.status_code"] == "OK"
    assert attrs(server)["network.peer.address"] == "127.0.0.1"
    assert attrs(client)["server.address"] == "127.0.0.1"
    assert client.status.status_code is server.status.status_code is StatusCode.UNSET


@pytest.mark.parametrize("method", METHODS)
def test_sync_spans_parent_client_to_server(method: str) -> None:
    """Sync, every call shape: the server span continues the client span's trace, and the
    handler runs with the server span current."""
    with capture(handle_signals=False) as cap, sync_pair() as channel:
        code, _, answer, _ = call_sync(channel, method, b"trace")
        assert code is grpc.StatusCode.OK
        assert_parented(cap, method, answer)


@pytest.mark.asyncio
@pytest.mark.parametrize("method", METHODS)
async def test_aio_spans_parent_client_to_server(method: str) -> None:
    """grpc.aio, every call shape: the same parenting as sync."""
    with capture(handle_signals=False) as cap:
        async with aio_pair() as channel:
            code, _, answer, _ = await call_aio(channel, method, b"trace")
        assert code is grpc.StatusCode.OK
        assert_parented(cap, method, answer)


def _commands() -> list[bytes]:
    return [f"abort:{code.name}:why {code.name.lower()}".encode() for code in grpc.StatusCode]


def _check_statuses(cap: Captured, plain: list[Result], observed: list[Result]) -> None:
    assert len(plain) == len(observed) == 4 * len(grpc.StatusCode) == 68
    assert observed == plain  # codes, details, responses and trailing metadata
    codes = {result[0] for result in observed}
    assert codes == set(grpc.StatusCode)
    wait_until(lambda: len(spans_of(cap, SpanKind.SERVER)) == 68)
    for span in spans_of(cap, SpanKind.SERVER):
        name = attrs(span)["rpc.status_code"]
        failed = grpc.StatusCode[str(name)] in SERVER_ERROR_CODES
        assert (span.status.status_code is StatusCode.ERROR) is failed, name
        assert ("error.type" in attrs(span)) is (name != "OK")


def test_sync_every_status_code_reaches_the_client_unchanged() -> None:
    """All 17 codes, their details and trailing metadata (text and binary) are the same with
    and without the interceptors, in every call shape; server spans carry the code."""
    with capture(handle_signals=False) as cap:
        with sync_server() as (_, target), grpc.insecure_channel(target) as channel:
            plain = [call_sync(channel, m, c) for m in METHODS for c in _commands()]
        with sync_pair() as channel:
            observed = [call_sync(channel, m, c) for m in METHODS for c in _commands()]
        _check_statuses(cap, plain, observed)


@pytest.mark.asyncio
async def test_aio_every_status_code_reaches_the_client_unchanged() -> None:
    """The grpc.aio twin: 17 codes x 4 shapes unchanged, spans carry the code."""
    with capture(handle_signals=False) as cap:
        async with aio_server() as (_, target), grpc.aio.insecure_channel(target) as channel:
            plain = [await call_aio(channel, m, c) for m in METHODS for c in _commands()]
        async with aio_pair() as channel:
            observed = [await call_aio(channel, m, c) for m in METHODS for c in _commands()]
        _check_statuses(cap, plain, observed)


@pytest.mark.asyncio
async def test_aio_server_with_plain_function_handlers_keeps_statuses() -> None:
    """grpc.aio running plain functions in its migration thread pool: all 17 codes x 4 shapes
    unchanged, and the spans still carry the code the handler set."""
    with capture(handle_signals=False) as cap:
        async with (
            aio_server(sync_handlers=True) as (_, target),
            grpc.aio.insecure_channel(target) as channel,
        ):
            plain = [await call_aio(channel, m, c) for m in METHODS for c in _commands()]
        async with (
            aio_server([aio_server_interceptor()], sync_handlers=True) as (_, target),
            grpc.aio.insecure_channel(target) as channel,
        ):
            observed = [await call_aio(channel, m, c) for m in METHODS for c in _commands()]
        _check_statuses(cap, plain, observed)


def test_unknown_methods_pass_through_unobserved() -> None:
    """A method the server does not have: gRPC's own UNIMPLEMENTED answer, no span."""
    with capture(handle_signals=False) as cap, sync_pair() as channel:
        with pytest.raises(grpc.RpcError) as error:
            channel.unary_unary("/test.Echo/Missing")(b"x", timeout=5)
        assert error.value.code() is grpc.StatusCode.UNIMPLEMENTED
        assert error.value.details() == "Method not found!"
        wait_until(lambda: len(cap.spans) == 1)
        assert [s.kind for s in cap.spans] == [SpanKind.CLIENT]  # the server made none


def test_client_log_line_is_opt_in_and_keeps_the_callers_fields() -> None:
    """``client_interceptor(log_calls=True)``: one ``grpc.client.call`` line per call with the
    client span's trace id and the caller's bound fields, even for streams that end later."""
    with capture(handle_signals=False) as cap:
        with sync_server([server_interceptor(log_calls=False)]) as (_, target):
            interceptor = client_interceptor(target=target, log_calls=True)
            channel = grpc.intercept_channel(grpc.insecure_channel(target), interceptor)
            with channel, obs.bound(order_id=7):
                results = [call_sync(channel, m, b"echo") for m in METHODS]
        assert [r[0] for r in results] == [grpc.StatusCode.OK] * 4
        wait_until(lambda: len([r for r in cap.logs if r["event"] == "grpc.client.call"]) == 4)
        lines = [r for r in cap.logs if r["event"] == "grpc.client.call"]
        clients = {format(s.context.trace_id, "032x") for s in spans_of(cap, SpanKind.CLIENT)}
        assert {line["trace_id"] for line in lines} == clients
        assert all(line["order_id"] == 7 for line in lines)
        assert sorted(line["rpc.method"] for line in lines) == sorted(
            f"test.Echo/{m}" for m in METHODS
        )


def _duration_count(side: str, method: str, code: str, error: str = "") -> float:
    labels = {
        "rpc.system.name": "grpc",
        "rpc.method": f"test.Echo/{method}",
        "rpc.status_code": code,
        "error.type": error,
    }
    return metrics.value(f"rpc.{side}.call.duration", **labels) or 0.0


def test_sync_metrics_have_semconv_names_attributes_and_exemplars() -> None:
    """``rpc.server.call.duration`` / ``rpc.client.call.duration`` count each call under its
    method, status code and error type; OpenMetrics shows the trace id as an exemplar."""
    with capture(handle_signals=False) as cap, sync_pair() as channel:
        for method in METHODS:
            before = _duration_count("server", method, "NOT_FOUND", "NOT_FOUND")
            call_sync(channel, method, b"echo")
            call_sync(channel, method, b"abort:NOT_FOUND:x")
            call_sync(channel, method, b"raise")
            assert _duration_count("server", method, "OK") >= 1
            assert _duration_count("server", method, "NOT_FOUND", "NOT_FOUND") == before + 1
            assert _duration_count("server", method, "UNKNOWN", "ValueError") >= 1
            assert _duration_count("client", method, "UNKNOWN", "UNKNOWN") >= 1
        _, _, body = metrics.render("application/openmetrics-text; version=1.0.0", None)
        text = body.decode()
        assert "rpc_server_call_duration_seconds_bucket{" in text
        assert 'rpc_method="test.Echo/UnaryUnary"' in text
        exemplar = r'_bucket\{.*# \{span_id="[0-9a-f]{16}",trace_id="([0-9a-f]{32})"\}'
        exemplars = re.findall("rpc_server_call_duration_seconds" + exemplar, text)
        traces = {format(s.context.trace_id, "032x") for s in spans_of(cap, SpanKind.SERVER)}
        assert exemplars
        assert set(exemplars) <= traces


@pytest.mark.asyncio
async def test_aio_metrics_have_semconv_names_and_attributes() -> None:
    """grpc.aio calls land in the same histograms with the same attributes."""
    with capture(handle_signals=False):
        async with aio_pair() as channel:
            for method in METHODS:
                before = _duration_count("client", method, "OK")
                await call_aio(channel, method, b"echo")
                await call_aio(channel, method, b"abort:PERMISSION_DENIED:x")
                assert _duration_count("client", method, "OK") == before + 1
                assert _duration_count("server", method, "OK") >= 1
                code, error = "PERMISSION_DENIED", "PERMISSION_DENIED"
                assert _duration_count("server", method, code, error) >= 1


_MALFORMED: list[list[tuple[str, Any]]] = [
    [("traceparent", "garbage")],
    [("traceparent", "00-" + "0" * 32 + "-" + "0" * 16 + "-01")],
    [("traceparent", "ff-" + "a" * 32 + "-" + "b" * 16 + "-01"), ("tracestate", "%%%,,=")],
    [("traceparent", "00-" + "z" * 32 + "-" + "b" * 16 + "-zz")],
    [("traceparent", "x" * 4000), ("baggage", "=;=;%%;" * 100)],
    [("traceparent", ""), ("traceparent", "garbage"), ("baggage", "k=v" * 500)],
    [("traceparent-bin", b"\x00\xff\x01"), ("baggage-bin", b"\xff")],
]


@pytest.mark.parametrize("metadata", _MALFORMED)
def test_sync_malformed_traceparent_never_raises(metadata: list[tuple[str, Any]]) -> None:
    """Malformed, empty, oversized and binary trace metadata: the call succeeds and the
    server span starts a fresh trace."""
    with capture(handle_signals=False) as cap:
        with (
            sync_server([server_interceptor()]) as (_, target),
            grpc.insecure_channel(target) as channel,
        ):
            results = [call_sync(channel, m, b"trace", metadata=metadata) for m in METHODS]
        assert [r[0] for r in results] == [grpc.StatusCode.OK] * 4
        servers = spans_of(cap, SpanKind.SERVER)
        assert len(servers) == 4
        assert all(span.parent is None for span in servers)


@pytest.mark.asyncio
async def test_aio_malformed_traceparent_never_raises() -> None:
    """grpc.aio: every malformed variant, every shape, succeeds with a root server span."""
    with capture(handle_signals=False) as cap:
        async with (
            aio_server([aio_server_interceptor()]) as (_, target),
            grpc.aio.insecure_channel(target) as channel,
        ):
            for metadata in _MALFORMED:
                for method in METHODS:
                    result = await call_aio(channel, method, b"echo", metadata=metadata)
                    assert result[0] is grpc.StatusCode.OK
        servers = spans_of(cap, SpanKind.SERVER)
        assert len(servers) == 4 * len(_MALFORMED)
        assert all(span.parent is None for span in servers)


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
        assert calls[0]["rpc.status_code"] == "OK"
        assert calls[0]["level"] == "info"
        assert calls[0]["duration_ms"] >= 0
        assert obs.bound_fields() == {}


@pytest.mark.asyncio
async def test_aio_log_calls_can_be_turned_off_and_errors_log_at_error() -> None:
    """``log_calls=False`` drops the per-call line (spans stay); with it on, a crash logs at
    error level with the exception, a client-side status at warning."""
    with capture(handle_signals=False) as cap:
        async with aio_pair(log_calls=False) as channel:
            await call_aio(channel, "UnaryUnary", b"echo")
        assert not [r for r in cap.logs if r["event"] == "grpc.server.call"]
        assert len(spans_of(cap, SpanKind.SERVER)) == 1
        async with aio_pair() as channel:
            await call_aio(channel, "UnaryUnary", b"raise")
            await call_aio(channel, "UnaryStream", b"abort:NOT_FOUND:x")
        lines = [r for r in cap.logs if r["event"] == "grpc.server.call"]
        assert [line["level"] for line in lines] == ["error", "warning"]
        assert lines[0]["error.type"] == "ValueError"
        assert "exception" in lines[0]
        assert lines[1]["rpc.status_code"] == "NOT_FOUND"


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
        codes = {(s.kind, attrs(s)["rpc.method"]): attrs(s)["rpc.status_code"]
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
            await _wait_async(lambda: len(cap.spans) == 6)
        got = sorted((s.kind.name, s.name, str(attrs(s)["rpc.status_code"])) for s in cap.spans)
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


async def _wait_async(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


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


def test_missing_grpc_extra_names_the_pip_install_line() -> None:
    """Without grpcio, ``import unified_obs.grpc`` raises ImportError naming the extra."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['grpc'] = None\n"
        "try:\n    import unified_obs.grpc\nexcept ImportError as exc:\n    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install 'unified-obs[grpc]'" in done.stdout
