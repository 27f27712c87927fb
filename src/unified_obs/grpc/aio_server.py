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
from ._common import LogCalls, Options, make_options
from ._observer import Call, Observer, bind_call
from .server import (
    UNKNOWN_METHOD_DETAILS,
    Behavior,
    Wrapper,
    begin,
    choose_sync,
    ended_status,
    failed_status,
    unknown_method,
)
from .server import wrapped_handler as _wrapped_handler

__all__ = ["AioServerInterceptor", "aio_server_interceptor"]

_OK = grpc.StatusCode.OK
_Scope = tuple[otel_context.Context, Any]


def _enter(call: Call, method: str) -> _Scope:
    previous = fields.current_otel_context()
    fields.attach_otel_context(fields.with_span(call.span, previous))
    return previous, bind_call(method)


def _exit(scope: _Scope) -> None:
    """Restore what ``_enter`` replaced; safe even from another task (no token reset)."""
    previous, token = scope
    fields.attach_otel_context(previous)
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


class _RecordingContext:
    """grpc.aio's context for plain functions (run in its migration thread pool) has no
    ``code()``/``details()``; this stand-in delegates everything and remembers the status
    the handler set, so the call is recorded with it."""

    __slots__ = ("_code", "_details", "_inner")

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._code: grpc.StatusCode | None = None
        self._details: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def set_code(self, code: grpc.StatusCode) -> None:
        """Set (and remember) the status code."""
        self._code = code
        self._inner.set_code(code)

    def set_details(self, details: str) -> None:
        """Set (and remember) the status details."""
        self._details = details
        self._inner.set_details(details)

    def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> Any:
        """Abort (remembering the status), exactly as the wrapped context does."""
        self._code, self._details = code, details
        return self._inner.abort(code, details, trailing_metadata)

    def code(self) -> grpc.StatusCode | None:
        """The code the handler set, if any."""
        return self._code

    def details(self) -> str | None:
        """The details the handler set, if any."""
        return self._details

    def is_active(self) -> bool:
        """Unknown in this context: assume the client is still there."""
        return True


def _recording(wrapper: Wrapper) -> Wrapper:
    def wrap(behavior: Behavior, method: str, observer: Observer) -> Behavior:
        inner = wrapper(behavior, method, observer)

        def handler(request: Any, context: Any) -> Any:
            if not hasattr(context, "code"):
                context = _RecordingContext(context)
            return inner(request, context)

        return handler

    return wrap


def choose_aio(behavior: Behavior, streaming: bool) -> Wrapper:
    """The wrapper that keeps ``behavior``'s kind (as grpc.aio tells them apart)."""
    if inspect.isasyncgenfunction(behavior):
        return _generating
    if inspect.iscoroutinefunction(behavior):
        return _awaiting
    return _recording(choose_sync(behavior, streaming))


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
            return unknown_method(handler_call_details, self._observer, _abort_unknown, choose_aio)
        return _wrapped_handler(
            self._wrapped, handler, handler_call_details, self._observer, choose_aio
        )


def _abort_unknown(original: str) -> Behavior:
    async def behavior(requests: Any, context: Any) -> None:
        trace.get_current_span().set_attribute("rpc.method_original", original)
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, UNKNOWN_METHOD_DETAILS)

    return behavior


def aio_server_interceptor(
    *,
    excluded_services: Iterable[str] | None = None,
    log_calls: LogCalls = True,
    tracer_provider: trace.TracerProvider | None = None,
) -> grpc.aio.ServerInterceptor:
    """An interceptor for ``grpc.aio.server(interceptors=[...])`` (same options as
    :func:`~unified_obs.grpc.server_interceptor`)."""
    options = make_options(excluded_services, log_calls)
    return AioServerInterceptor(Observer("server", options, tracer_provider))
