"""The client interceptor for ``grpc.intercept_channel``: one CLIENT span per call with the
trace context injected into the metadata, ``rpc.client.call.duration`` and an optional log
line, for all four call shapes (blocking, ``with_call``, ``future`` and streams).

The call object gRPC returns is handed back untouched; the call is recorded from gRPC's
own termination callback, so cancelled, timed-out and never-iterated streams end too.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Iterable
from contextvars import copy_context
from typing import Any, Final

import grpc
from opentelemetry import trace

from ._common import LogCalls, Options, full_method, inject, make_options
from ._observer import Call, Observer

__all__ = ["ClientInterceptor", "client_interceptor", "finish_from", "with_metadata"]

_log: Final = logging.getLogger("unified_obs")


class _ClientCallDetails(
    collections.namedtuple(
        "_ClientCallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,  # type: ignore[misc]
):
    """Call details with our metadata (gRPC's own class is private)."""


def with_metadata(details: Any, metadata: list[tuple[str, Any]]) -> _ClientCallDetails:
    """A copy of sync ``details`` carrying ``metadata``."""
    return _ClientCallDetails(
        details.method,
        details.timeout,
        metadata,
        details.credentials,
        getattr(details, "wait_for_ready", None),
        getattr(details, "compression", None),
    )


def start_call(
    observer: Observer, details: Any, rebuild: Callable[[Any, list[tuple[str, Any]]], Any]
) -> tuple[Call | None, Any]:
    """Start observing a client call: ``(call, details carrying the trace context)``, made
    by ``rebuild(details, metadata)``; ``(None, details)`` when excluded or on any failure."""
    try:
        method = full_method(details.method)
        if not observer.options.client_traced(method):
            return None, details
        call = observer.start(method, None)
        return call, rebuild(details, inject(details.metadata, call.span))
    except Exception:
        _log.warning("unified_obs: could not start observing a gRPC call", exc_info=True)
        return None, details


def finish_from(call: Call, outcome: Any, code: Any, details: Any) -> None:
    """Record ``call`` with the status gRPC reported for it."""
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    text = details if isinstance(details, str) and details else None
    call.finish(code, details=text if code is not grpc.StatusCode.OK else None, attach=True)


class ClientInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Observes every call made through an intercepted channel."""

    def __init__(self, observer: Observer) -> None:
        self._observer = observer

    @property
    def options(self) -> Options:
        """The options this interceptor was made with."""
        return self._observer.options

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        """Unary request, unary response."""
        return self._intercept(continuation, details, request, streaming=False)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        """Unary request, streamed response."""
        return self._intercept(continuation, details, request, streaming=True)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        """Streamed requests, unary response."""
        return self._intercept(continuation, details, requests, streaming=False)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        """Streamed requests, streamed response."""
        return self._intercept(continuation, details, requests, streaming=True)

    def _intercept(self, continuation: Any, details: Any, request: Any, streaming: bool) -> Any:
        call, details = start_call(self._observer, details, with_metadata)
        if call is None:
            return continuation(details, request)
        try:
            outcome = continuation(details, request)
        except BaseException as exc:  # gRPC failed before making a call (serialization ...)
            call.finish(grpc.StatusCode.UNKNOWN, exc, attach=True)
            raise
        self._watch(call, outcome, streaming)
        return outcome

    def _watch(self, call: Call, outcome: Any, streaming: bool) -> None:
        ctx = copy_context() if self._observer.options.log_calls else None

        def done(*_: Any) -> None:
            if ctx is None:
                finish_from(call, outcome, outcome.code(), outcome.details())
            else:
                ctx.run(lambda: finish_from(call, outcome, outcome.code(), outcome.details()))

        try:
            if streaming:
                if not outcome.add_callback(done):
                    done()
            elif outcome.done():
                done()
            else:
                outcome.add_done_callback(done)
        except Exception:
            _log.warning("unified_obs: could not watch a gRPC call", exc_info=True)
            call.finish(grpc.StatusCode.UNKNOWN)


def client_interceptor(
    *,
    target: str | None = None,
    excluded_services: Iterable[str] | None = None,
    log_calls: LogCalls = False,
    tracer_provider: trace.TracerProvider | None = None,
) -> ClientInterceptor:
    """An interceptor for ``grpc.intercept_channel(channel, client_interceptor())``.

    ``target`` (``host:port`` as given to the channel) fills ``server.address`` and
    ``server.port``; ``log_calls=True`` adds one log line per call (``"errors"``: only
    for calls that did not end OK).
    """
    options = make_options(excluded_services, log_calls, target)
    return ClientInterceptor(Observer("client", options, tracer_provider))
