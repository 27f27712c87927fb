"""A real gRPC test service (generic handlers, bytes in and out) and the helpers the gRPC
tests share (servers, client/server pairs with our interceptors, bounded waits).

The first request message says what the handler does:

- ``echo`` (or anything unknown): answer with the request;
- ``abort:NAME:details``: set trailing metadata, then ``abort`` with status ``NAME``
  (``OK`` is set with ``set_code`` instead, as gRPC forbids aborting with OK);
- ``raise``: raise ``ValueError``;
- ``sleep:SECONDS``: sleep, then answer ``slept``;
- ``trace``: answer with the trace id the handler runs under.

Streaming responses send three messages before acting on the command.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent import futures
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Final

import grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from unified_obs import current_trace_ids
from unified_obs.grpc import (
    aio_client_interceptor,
    aio_server_interceptor,
    client_interceptor,
    server_interceptor,
)
from unified_obs.testing import Captured

SERVICE: Final = "test.Echo"
METHODS: Final = ("UnaryUnary", "UnaryStream", "StreamUnary", "StreamStream")
TRAILER: Final = (("x-trailer", "kept"), ("x-trailer-bin", b"\x00\x01"))


def path(method: str) -> str:
    """``/test.Echo/<method>``."""
    return f"/{SERVICE}/{method}"


def _reply(command: bytes) -> bytes:
    if command == b"trace":
        ids = current_trace_ids()
        return ids[0].encode() if ids else b"none"
    return command


def _act(command: bytes, context: Any) -> bytes:
    """Run ``command`` in a sync handler; returns the answer (or raises / aborts)."""
    name, _, rest = command.decode().partition(":")
    if name == "abort":
        code_name, _, details = rest.partition(":")
        context.set_trailing_metadata(TRAILER)
        if code_name == "OK":
            context.set_code(grpc.StatusCode.OK)
            context.set_details(details)
            return b""
        context.abort(grpc.StatusCode[code_name], details)
    if name == "raise":
        raise ValueError("boom")
    if name == "sleep":
        time.sleep(float(rest))
        return b"slept"
    return _reply(command)


async def _aact(command: bytes, context: Any) -> bytes:
    """Run ``command`` in an async handler."""
    name, _, rest = command.decode().partition(":")
    if name == "abort":
        code_name, _, details = rest.partition(":")
        context.set_trailing_metadata(TRAILER)
        if code_name == "OK":
            context.set_code(grpc.StatusCode.OK)
            context.set_details(details)
            return b""
        await context.abort(grpc.StatusCode[code_name], details)
    if name == "raise":
        raise ValueError("boom")
    if name == "sleep":
        await asyncio.sleep(float(rest))
        return b"slept"
    return _reply(command)


def unary_unary(request: bytes, context: Any) -> bytes:
    """Sync unary-unary."""
    return _act(request, context)


def unary_stream(request: bytes, context: Any) -> Iterator[bytes]:
    """Sync unary-stream: three messages, then the command."""
    for index in range(3):
        yield b"item%d" % index
    yield _act(request, context)


def stream_unary(requests: Iterator[bytes], context: Any) -> bytes:
    """Sync stream-unary: acts on the first message after reading them all."""
    items = list(requests)
    return _act(items[0] if items else b"echo", context)


def stream_stream(requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
    """Sync stream-stream."""
    items = list(requests)
    yield from unary_stream(items[0] if items else b"echo", context)


async def aunary_unary(request: bytes, context: Any) -> bytes:
    """Async unary-unary."""
    return await _aact(request, context)


async def aunary_stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
    """Async unary-stream (an async generator)."""
    for index in range(3):
        yield b"item%d" % index
    yield await _aact(request, context)


async def astream_unary(requests: AsyncIterator[bytes], context: Any) -> bytes:
    """Async stream-unary."""
    items = [item async for item in requests]
    return await _aact(items[0] if items else b"echo", context)


async def astream_stream(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    """Async stream-stream."""
    items = [item async for item in requests]
    async for item in aunary_stream(items[0] if items else b"echo", context):
        yield item


def handlers(aio: bool) -> grpc.GenericRpcHandler:
    """The generic handler of ``test.Echo`` (sync or async behaviours)."""
    uu, us, su, ss = (
        (aunary_unary, aunary_stream, astream_unary, astream_stream)
        if aio
        else (unary_unary, unary_stream, stream_unary, stream_stream)
    )
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "UnaryUnary": grpc.unary_unary_rpc_method_handler(uu),
            "UnaryStream": grpc.unary_stream_rpc_method_handler(us),
            "StreamUnary": grpc.stream_unary_rpc_method_handler(su),
            "StreamStream": grpc.stream_stream_rpc_method_handler(ss),
        },
    )


@contextmanager
def sync_server(
    interceptors: Sequence[Any] = (), workers: int = 8
) -> Iterator[tuple[grpc.Server, str]]:
    """A started ``grpc.server`` on 127.0.0.1 (port chosen now) -> (server, target)."""
    server = grpc.server(futures.ThreadPoolExecutor(workers), interceptors=list(interceptors))
    server.add_generic_rpc_handlers((handlers(aio=False),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield server, f"127.0.0.1:{port}"
    finally:
        server.stop(None)


@asynccontextmanager
async def aio_server(
    interceptors: Sequence[Any] = (), *, sync_handlers: bool = False
) -> AsyncIterator[tuple[Any, str]]:
    """A started ``grpc.aio.server`` on 127.0.0.1 (port chosen now) -> (server, target).

    ``sync_handlers`` serves the plain-function handlers from gRPC's migration thread pool.
    """
    pool = futures.ThreadPoolExecutor(8) if sync_handlers else None
    server = grpc.aio.server(pool, interceptors=list(interceptors))
    server.add_generic_rpc_handlers((handlers(aio=not sync_handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield server, f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


def call_sync(
    channel: grpc.Channel,
    method: str,
    command: bytes,
    *,
    metadata: Sequence[tuple[str, Any]] | None = None,
    timeout: float | None = 5.0,
) -> tuple[grpc.StatusCode, str | None, list[bytes], tuple[Any, ...]]:
    """Call ``method`` with ``command`` -> (code, details, responses, trailing metadata)."""
    stub: Any = getattr(channel, _STUB[method])(path(method))
    request: Any = command if not method.startswith("Stream") else iter([command, b"more"])
    try:
        if method.endswith("Stream"):
            call = stub(request, metadata=metadata, timeout=timeout)
            responses = list(call)
        else:
            response, call = stub.with_call(request, metadata=metadata, timeout=timeout)
            responses = [response]
        return call.code(), call.details(), responses, tuple(call.trailing_metadata() or ())
    except grpc.RpcError as error:
        trailing = tuple(error.trailing_metadata() or ())
        return error.code(), error.details(), [], trailing


async def call_aio(
    channel: Any,
    method: str,
    command: bytes,
    *,
    metadata: Sequence[tuple[str, Any]] | None = None,
    timeout: float | None = 5.0,
) -> tuple[grpc.StatusCode, str | None, list[bytes], tuple[Any, ...]]:
    """The ``grpc.aio`` twin of :func:`call_sync`."""
    stub: Any = getattr(channel, _STUB[method])(path(method))
    request: Any = command if not method.startswith("Stream") else _agen([command, b"more"])
    call = stub(request, metadata=metadata, timeout=timeout)
    responses: list[bytes] = []
    streaming = method.endswith("Stream")
    try:
        responses = [item async for item in call] if streaming else [await call]
    except grpc.aio.AioRpcError:
        responses = []
    trailing = tuple(await call.trailing_metadata() or ())
    return await call.code(), await call.details(), responses, trailing


async def _agen(items: Iterable[bytes]) -> AsyncIterator[bytes]:
    for item in items:
        yield item


_STUB: Final = {
    "UnaryUnary": "unary_unary",
    "UnaryStream": "unary_stream",
    "StreamUnary": "stream_unary",
    "StreamStream": "stream_stream",
}


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


async def wait_async(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)
