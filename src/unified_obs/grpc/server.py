"""The ``grpc.server`` interceptor: one SERVER span, duration observation and log line per
call, for all four call shapes.

Each call runs in a copy of the caller's ``contextvars`` context, so the span and the
request's bound log fields are current for the handler (and for a streaming handler
between messages) and vanish with the call: nothing is attached that must be detached.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextvars import copy_context
from typing import Any, Final

import grpc
from opentelemetry import trace

from ..context import attach_otel_context, with_span
from ._common import (
    OTHER_METHOD,
    LogCalls,
    Options,
    extract,
    full_method,
    make_options,
    parse_peer,
)
from ._faults import with_faults
from ._observer import Call, Observer, bind_call

__all__ = [
    "UNKNOWN_METHOD_DETAILS",
    "ServerInterceptor",
    "begin",
    "ended_status",
    "failed_status",
    "rewrap",
    "server_interceptor",
]

_log: Final = logging.getLogger("unified_obs")
_OK: Final = grpc.StatusCode.OK
_CACHE_LIMIT: Final = 4096
UNKNOWN_METHOD_DETAILS: Final = "Method not found!"
"""What gRPC itself answers a call to a method no handler serves (with UNIMPLEMENTED)."""
Behavior = Callable[..., Any]
Wrapper = Callable[[Behavior, str, Observer], Behavior]

_FACTORIES: Final = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


def rewrap(
    handler: grpc.RpcMethodHandler, method: str, observer: Observer, choose: Callable[..., Wrapper]
) -> grpc.RpcMethodHandler:
    """A handler of the same shape whose behaviour is wrapped by ``choose(fn, streaming)``."""
    shape = (bool(handler.request_streaming), bool(handler.response_streaming))
    attribute, factory = _FACTORIES[shape]
    behavior = getattr(handler, attribute)
    wrapper = choose(behavior, shape[1])
    return factory(
        wrapper(with_faults(behavior, method), method, observer),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _gone(context: Any) -> grpc.StatusCode:
    """Why a call ended without a status of the handler's: deadline or cancellation."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


def ended_status(context: Any, active: bool = True) -> grpc.StatusCode:
    """The status of a call whose handler returned: the code it set, else OK (or why the
    client went away while it worked)."""
    code = context.code()
    if code is not None:
        return code
    return _OK if active else _gone(context)


def failed_status(context: Any, cancelled: bool) -> tuple[grpc.StatusCode, bool]:
    """(status, aborted) of a call whose handler raised: ``abort()``'s code, the client's
    cancellation or deadline, else UNKNOWN as gRPC reports a crash."""
    code = context.code()
    if code is not None and code is not _OK:
        return code, True
    if cancelled:
        return _gone(context), False
    return grpc.StatusCode.UNKNOWN, False


def begin(observer: Observer, method: str, context: Any) -> Call | None:
    """Start the call (span from the metadata's trace context); None if that fails."""
    try:
        parent = extract(context.invocation_metadata())
        call = observer.start(method, parent, parse_peer(context.peer()))
    except Exception:
        _log.warning("unified_obs: could not start observing a gRPC call", exc_info=True)
        return None
    return call


def _enter(call: Call, method: str) -> None:
    attach_otel_context(with_span(call.span, None))  # in the call's own context copy
    bind_call(method)


def _start(observer: Observer, method: str, context: Any) -> Call | None:
    call = begin(observer, method, context)
    if call is not None:
        _enter(call, method)
    return call


def _finish_ok(call: Call, context: Any) -> None:
    try:
        code = ended_status(context, context.is_active())
        call.finish(code, details=_text(context.details()) if code is not _OK else None)
    except Exception:
        call.finish(_OK)


def _finish_gone(call: Call, context: Any) -> None:
    try:
        call.finish(ended_status(context, active=False))
    except Exception:
        call.finish(grpc.StatusCode.CANCELLED)


def _finish_error(call: Call, context: Any, exc: BaseException) -> None:
    try:
        code, aborted = failed_status(context, not context.is_active())
        call.finish(code, exc, aborted=aborted, details=_text(context.details()))
    except Exception:
        call.finish(grpc.StatusCode.UNKNOWN, exc)


def _run_unary_response(
    observer: Observer, method: str, behavior: Behavior, request: Any, context: Any
) -> Any:
    call = _start(observer, method, context)
    if call is None:
        return behavior(request, context)
    try:
        response = behavior(request, context)
    except BaseException as exc:
        _finish_error(call, context, exc)
        raise
    _finish_ok(call, context)
    return response


def unary_response(behavior: Behavior, method: str, observer: Observer) -> Behavior:
    """Wrap a unary-unary or stream-unary behaviour."""

    def handler(request: Any, context: Any) -> Any:
        return copy_context().run(_run_unary_response, observer, method, behavior, request, context)

    return handler


def stream_response(behavior: Behavior, method: str, observer: Observer) -> Behavior:
    """Wrap a unary-stream or stream-stream behaviour; the call ends with the stream
    (exhausted, raised, or closed because the client went away)."""

    def handler(request: Any, context: Any) -> Iterator[Any]:
        ctx = copy_context()
        call = ctx.run(_start, observer, method, context)
        if call is None:
            yield from behavior(request, context)
            return
        try:
            responses: Iterator[Any] = ctx.run(_iterate, behavior, request, context)
            while True:
                try:
                    item = ctx.run(next, responses)
                except StopIteration:
                    break
                yield item
        except GeneratorExit:  # the client went away: gRPC dropped the stream
            ctx.run(_finish_gone, call, context)
            raise
        except BaseException as exc:
            ctx.run(_finish_error, call, context, exc)
            raise
        ctx.run(_finish_ok, call, context)

    return handler


def _iterate(behavior: Behavior, request: Any, context: Any) -> Iterator[Any]:
    result: Iterable[Any] = behavior(request, context)
    return iter(result)


def choose_sync(behavior: Behavior, streaming: bool) -> Wrapper:
    """The wrapper for a plain (thread-pool) behaviour."""
    return stream_response if streaming else unary_response


class ServerInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Observes every call of a ``grpc.server`` except the excluded services."""

    def __init__(self, observer: Observer) -> None:
        self._observer = observer
        self._wrapped: dict[Any, grpc.RpcMethodHandler] = {}

    @property
    def options(self) -> Options:
        """The options this interceptor was made with."""
        return self._observer.options

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        """Wrap the handler gRPC resolved for this call (cached per handler)."""
        handler = continuation(handler_call_details)
        if handler is None:
            return unknown_method(handler_call_details, self._observer, _abort_unknown)
        return wrapped_handler(self._wrapped, handler, handler_call_details, self._observer)


def unknown_method(
    details: grpc.HandlerCallDetails,
    observer: Observer,
    abort: Callable[[str], Behavior],
    choose: Callable[..., Wrapper] = choose_sync,
) -> grpc.RpcMethodHandler | None:
    """For a method no handler serves: a handler answering UNIMPLEMENTED as gRPC would,
    observed as ``rpc.method="_OTHER"`` (the name only on the span, as
    ``rpc.method_original``: it is the client's choice); None when excluded."""
    try:
        original = full_method(details.method)
        if not observer.options.traced(original):
            return None
        handler = grpc.stream_stream_rpc_method_handler(abort(original))
        return rewrap(handler, OTHER_METHOD, observer, choose)
    except Exception:
        _log.warning("unified_obs: could not observe a call to an unknown method", exc_info=True)
        return None


def _abort_unknown(original: str) -> Behavior:
    def behavior(requests: Any, context: Any) -> Iterator[Any]:
        trace.get_current_span().set_attribute("rpc.method_original", original)
        context.abort(grpc.StatusCode.UNIMPLEMENTED, UNKNOWN_METHOD_DETAILS)
        yield from ()  # a stream handler: gRPC iterates the answer

    return behavior


def wrapped_handler(
    cache: dict[Any, grpc.RpcMethodHandler],
    handler: grpc.RpcMethodHandler,
    details: grpc.HandlerCallDetails,
    observer: Observer,
    choose: Callable[..., Wrapper] = choose_sync,
) -> grpc.RpcMethodHandler:
    """``handler`` wrapped for ``details.method`` (or as is when excluded / on failure)."""
    key: tuple[Any, Any] | None = (details.method, handler)
    try:
        return cache[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable custom handler: wrap it every time
        key = None
    try:
        method = full_method(details.method)
        result = (
            rewrap(handler, method, observer, choose)
            if observer.options.traced(method)
            else handler
        )
    except Exception:
        _log.warning("unified_obs: could not wrap a gRPC handler", exc_info=True)
        return handler
    if key is not None and len(cache) < _CACHE_LIMIT:
        cache[key] = result
    return result


def server_interceptor(
    *,
    excluded_services: Iterable[str] | None = None,
    log_calls: LogCalls = True,
    tracer_provider: trace.TracerProvider | None = None,
) -> grpc.ServerInterceptor:
    """An interceptor for ``grpc.server(..., interceptors=[...])``.

    ``excluded_services`` replaces the default exclusions (health and reflection);
    ``log_calls=False`` drops the per-call log line (spans and metrics stay);
    ``log_calls="errors"`` keeps it only for calls that did not end OK.
    """
    options = make_options(excluded_services, log_calls)
    return ServerInterceptor(Observer("server", options, tracer_provider))
