"""The span matrix: {4 call shapes} x {sync, aio} x {ok, error, cancelled} -> exactly one
finished span per side, each with the right status, and the call's result unchanged."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from tests.test_grpc_support import METHODS, aio_pair, aio_server, attrs, path, sync_pair
from unified_obs.grpc import aio_client_interceptor
from unified_obs.lifecycle import inflight
from unified_obs.testing import Captured, capture

_EXPECTED = {
    "ok": (b"echo", "OK"),
    "error": (b"abort:INTERNAL:bad", "INTERNAL"),
    "cancelled": (b"sleep:0.3", "CANCELLED"),
}


def _wait(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def _requests(command: bytes) -> Any:
    return iter([command])


def _check(cap: Captured, method: str, code: str) -> None:
    _wait(lambda: len(cap.spans) == 2 and inflight.count == 0)
    by_kind = {span.kind: span for span in cap.spans}
    assert set(by_kind) == {SpanKind.CLIENT, SpanKind.SERVER}
    for kind, span in by_kind.items():
        assert span.name == f"test.Echo/{method}"
        assert attrs(span)["rpc.response.status_code"] == code, kind
    failed = code != "OK"
    assert (by_kind[SpanKind.CLIENT].status.status_code is StatusCode.ERROR) is failed
    assert (by_kind[SpanKind.SERVER].status.status_code is StatusCode.ERROR) is (code == "INTERNAL")


def _sync_call(channel: grpc.Channel, method: str, command: bytes, cancel: bool) -> Any:
    stub: Any = getattr(channel, _SHAPES[method])(path(method))
    request = _requests(command) if method.startswith("Stream") else command
    if method.endswith("Stream"):
        call = stub(request, timeout=5)
        if cancel:
            assert next(call) == b"item0"
            call.cancel()
            return grpc.StatusCode.CANCELLED
        with contextlib.suppress(grpc.RpcError):
            list(call)
        return call.code()
    future = stub.future(request, timeout=5)
    if cancel:
        _wait(lambda: inflight.count >= 2)  # the server is running it
        future.cancel()
    return future.code()


@pytest.mark.parametrize("outcome", list(_EXPECTED))
@pytest.mark.parametrize("method", METHODS)
def test_sync_matrix(method: str, outcome: str) -> None:
    """Sync: one client and one server span per call with the expected code."""
    command, code = _EXPECTED[outcome]
    with capture(handle_signals=False) as cap, sync_pair() as channel:
        result = _sync_call(channel, method, command, cancel=outcome == "cancelled")
        assert result is grpc.StatusCode[code]
        _check(cap, method, code)


async def _arequests(command: bytes) -> AsyncIterator[bytes]:
    yield command


async def _aio_call(channel: Any, method: str, command: bytes, cancel: bool) -> Any:
    stub: Any = getattr(channel, _SHAPES[method])(path(method))
    request = _arequests(command) if method.startswith("Stream") else command
    call = stub(request, timeout=5)
    if cancel:
        if method.endswith("Stream"):
            assert await call.read() == b"item0"
        else:
            for _ in range(500):  # bounded: the server is running it within 5 s
                if inflight.count >= 2:
                    break
                await asyncio.sleep(0.01)
        call.cancel()
        return await call.code()
    with contextlib.suppress(grpc.aio.AioRpcError):
        await _drain(call, method)
    return await call.code()


async def _drain(call: Any, method: str) -> None:
    if method.endswith("Stream"):
        async for _ in call:
            pass
    else:
        await call


@pytest.mark.asyncio
@pytest.mark.parametrize("outcome", list(_EXPECTED))
@pytest.mark.parametrize("method", METHODS)
async def test_aio_matrix(method: str, outcome: str) -> None:
    """grpc.aio: one client and one server span per call with the expected code."""
    command, code = _EXPECTED[outcome]
    with capture(handle_signals=False) as cap:
        async with aio_pair() as channel:
            task = _aio_call(channel, method, command, cancel=outcome == "cancelled")
            result = await asyncio.wait_for(task, 5)
            assert result is grpc.StatusCode[code]
            await asyncio.to_thread(_check, cap, method, code)


_SHAPES = {
    "UnaryUnary": "unary_unary",
    "UnaryStream": "unary_stream",
    "StreamUnary": "stream_unary",
    "StreamStream": "stream_stream",
}


def _bad_serializer(request: bytes) -> bytes:
    raise ValueError("cannot serialize")


def test_sync_client_call_failing_before_the_wire_still_ends_its_span() -> None:
    """A request that cannot be serialized: the error reaches the caller as without us and
    the client span ends with an error status; nothing stays in flight."""
    with capture(handle_signals=False) as cap, sync_pair() as channel:
        stub = channel.unary_unary(path("UnaryUnary"), request_serializer=_bad_serializer)
        with pytest.raises(Exception, match="serializ"):
            stub(b"echo", timeout=5)
        _wait(lambda: len(cap.spans) == 1 and inflight.count == 0)
        (span,) = cap.spans
        assert span.kind is SpanKind.CLIENT
        assert span.status.status_code is StatusCode.ERROR


class _Refuse(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """An interceptor after ours that fails before any call is made."""

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        raise RuntimeError("refused")


@pytest.mark.asyncio
async def test_aio_client_call_failing_before_the_wire_still_ends_its_span() -> None:
    """grpc.aio: when the rest of the chain fails before making a call, that error reaches
    the caller and our client span ends with an error; nothing stays in flight."""
    with capture(handle_signals=False) as cap:
        async with aio_server() as (_, target):
            interceptors = [*aio_client_interceptor(), _Refuse()]
            async with grpc.aio.insecure_channel(target, interceptors=interceptors) as channel:
                with pytest.raises(RuntimeError, match="refused"):
                    await channel.unary_unary(path("UnaryUnary"))(b"echo", timeout=5)
        (span,) = cap.spans
        assert span.kind is SpanKind.CLIENT
        assert span.status.status_code is StatusCode.ERROR
        assert attrs(span)["error.type"] == "RuntimeError"
        assert inflight.count == 0
