"""The ``grpc.aio.server`` interceptor, for all four call shapes.

It wraps the resolved ``RpcMethodHandler`` (``intercept_service`` returns a handler of the
same shape) rather than the stream objects, which keeps streaming calls intact; coroutine
behaviours stay coroutines, async generators stay async generators, and plain functions
(run by gRPC in its migration thread pool) get the sync wrappers.  The span ends on
success, error, abort, cancellation, deadline and when gRPC closes an abandoned stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace

from .. import context as fields
from ._common import Call, Observer, Options, bind_call, make_options
from .server import Behavior, Wrapper, begin, choose_sync, ended_status, failed_status
from .server import wrapped_handler as _wrapped_handler

__all__ = ["AioServerInterceptor", "aio_server_interceptor"]

_OK = grpc.StatusCode.OK
_Scope = tuple[otel_context.Context, Any]


def _enter(call: Call, method: str) -> _Scope:
    previous = otel_context.get_current()
    otel_context.attach(trace.set_span_in_context(call.span))
    return previous, bind_call(method)


def _exit(scope: _Scope) -> None:
    """Restore what ``_enter`` replaced; safe even from another task (no token reset)."""
    previous, token = scope
    otel_context.attach(previous)
    with contextlib.suppress(ValueError):  # reset from another context (a finalizer)
        fields.reset(token)


def _details(context: Any) -> str | None:
    details = context.details()
    return details if isinstance(details, str) and details else None


def _finish(call: Call, context: Any, exc: BaseException | None) -> None:
    try:
        if exc is None:
            code = ended_status(context)
            call.finish(code, details=_details(context) if code is not _OK else None)
        elif isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
            call.finish(ended_status(context, active=False))
        else:
            code, aborted = failed_status(context, cancelled=False)
            call.finish(code, exc, aborted=aborted, details=_details(context))
    except Exception:
        call.finish(grpc.StatusCode.UNKNOWN, exc)


def _awaiting(behavior: Behavior, method: str, observer: Observer) -> Behavior:
    """Wrap a coroutine behaviour (unary responses, or streams written by ``context.write``)."""

    async def handler(request: Any, context: Any) -> Any:
        call = begin(observer, method, context)
        if call is None:
            return await behavior(request, context)
        scope = _enter(call, method)
        try:
            response = await behavior(request, context)
        except BaseException as exc:
            _finish(call, context, exc)
            raise
        else:
            _finish(call, context, None)
        finally:
            _exit(scope)
        return response

    return handler


def _generating(behavior: Behavior, method: str, observer: Observer) -> Behavior:
    """Wrap an async-generator behaviour; the call ends with the stream."""

    async def handler(request: Any, context: Any) -> AsyncIterator[Any]:
        call = begin(observer, method, context)
        if call is None:
            async for item in behavior(request, context):
                yield item
            return
        scope = _enter(call, method)
        try:
            async for item in behavior(request, context):
                yield item
        except BaseException as exc:
            _finish(call, context, exc)
            raise
        else:
            _finish(call, context, None)
        finally:
            _exit(scope)

    return handler


def choose_aio(behavior: Behavior, streaming: bool) -> Wrapper:
    """The wrapper that keeps ``behavior``'s kind (as grpc.aio tells them apart)."""
    if inspect.isasyncgenfunction(behavior):
        return _generating
    if inspect.iscoroutinefunction(behavior):
        return _awaiting
    return choose_sync(behavior, streaming)


class AioServerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Observes every call of a ``grpc.aio.server`` except the excluded services."""

    def __init__(self, observer: Observer) -> None:
        self._observer = observer
        self._wrapped: dict[Any, grpc.RpcMethodHandler] = {}

    @property
    def options(self) -> Options:
        """The options this interceptor was made with."""
        return self._observer.options

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        """Wrap the handler gRPC resolved for this call (cached per handler)."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return _wrapped_handler(
            self._wrapped, handler, handler_call_details, self._observer, choose_aio
        )


def aio_server_interceptor(
    *,
    excluded_services: Iterable[str] | None = None,
    log_calls: bool = True,
    tracer_provider: trace.TracerProvider | None = None,
) -> grpc.aio.ServerInterceptor:
    """An interceptor for ``grpc.aio.server(interceptors=[...])`` (same options as
    :func:`~unified_obs.grpc.server_interceptor`)."""
    options = make_options(excluded_services, log_calls)
    return AioServerInterceptor(Observer("server", options, tracer_provider))
