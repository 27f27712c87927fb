"""Client interceptors for ``grpc.aio`` channels, for all four call shapes.

grpc.aio files an interceptor under only one call shape, so the factory returns one
interceptor per shape (sharing one observer): pass the whole list to the channel.  Each
hands back the call object gRPC made, untouched, and records the call from its done
callback, so cancelled, timed-out and never-iterated calls end their span too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from contextvars import copy_context
from typing import Any, Final

import grpc
from opentelemetry import trace

from ._common import LogCalls, make_options
from ._observer import Call, Observer
from .client import finish_from, start_call

__all__ = ["aio_client_interceptor"]

_log: Final = logging.getLogger("unified_obs")


def _now(awaitable: Awaitable[Any]) -> Any:
    """The value of an awaitable that is already complete, without an event-loop turn."""
    steps = awaitable.__await__()
    try:
        steps.send(None)
    except StopIteration as stop:
        return stop.value
    close = getattr(steps, "close", None)
    if close is not None:
        close()
    raise LookupError("not complete")


def _with_metadata(details: Any, metadata: list[tuple[str, Any]]) -> Any:
    """A copy of aio ``details`` carrying ``metadata``."""
    return details._replace(metadata=grpc.aio.Metadata(*metadata))


async def _later(call: Call, grpc_call: Any) -> None:
    finish_from(call, grpc_call, await grpc_call.code(), await grpc_call.details())


_pending: set[asyncio.Future[None]] = set()


class _Base:
    """The shared body of the four shape-specific interceptors."""

    def __init__(self, observer: Observer) -> None:
        self._observer = observer

    async def _intercept(self, continuation: Any, details: Any, request: Any) -> Any:
        call, details = start_call(self._observer, details, _with_metadata)
        if call is None:
            return await continuation(details, request)
        try:
            grpc_call = await continuation(details, request)
        except BaseException as exc:  # no call was made (serialization, cancellation ...)
            call.finish(grpc.StatusCode.UNKNOWN, exc, attach=True)
            raise
        self._watch(call, grpc_call)
        return grpc_call

    def _watch(self, call: Call, grpc_call: Any) -> None:
        ctx = copy_context() if self._observer.options.log_calls else None

        def done(finished: Any) -> None:
            try:
                code, details = _now(finished.code()), _now(finished.details())
            except LookupError:
                _pending.add(task := asyncio.ensure_future(_later(call, finished)))
                task.add_done_callback(_pending.discard)
                return
            if ctx is None:
                finish_from(call, finished, code, details)
            else:
                ctx.run(finish_from, call, finished, code, details)

        try:
            grpc_call.add_done_callback(done)
        except Exception:
            _log.warning("unified_obs: could not watch a gRPC call", exc_info=True)
            call.finish(grpc.StatusCode.UNKNOWN)


class _UnaryUnary(_Base, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        """Unary request, unary response."""
        return await self._intercept(continuation, details, request)


class _UnaryStream(_Base, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        """Unary request, streamed response."""
        return await self._intercept(continuation, details, request)


class _StreamUnary(_Base, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        """Streamed requests, unary response."""
        return await self._intercept(continuation, details, requests)


class _StreamStream(_Base, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        """Streamed requests, streamed response."""
        return await self._intercept(continuation, details, requests)


def aio_client_interceptor(
    *,
    target: str | None = None,
    excluded_services: Iterable[str] | None = None,
    log_calls: LogCalls = False,
    tracer_provider: trace.TracerProvider | None = None,
) -> list[grpc.aio.ClientInterceptor]:
    """Interceptors for ``grpc.aio.insecure_channel(target, interceptors=...)`` — one per
    call shape, because grpc.aio files each interceptor under a single shape.

    Same options as :func:`~unified_obs.grpc.client_interceptor`.
    """
    options = make_options(excluded_services, log_calls, target)
    observer = Observer("client", options, tracer_provider)
    return [_UnaryUnary(observer), _UnaryStream(observer), _StreamUnary(observer),
            _StreamStream(observer)]  # fmt: skip
