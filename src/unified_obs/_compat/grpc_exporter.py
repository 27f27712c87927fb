"""The OTLP/gRPC exporters (``opentelemetry-exporter-otlp-proto-grpc``): RESOURCE_EXHAUSTED
is retried only when the collector says when.

The OTLP specification (``specification/protocol/exporter.md`` and the OTLP/gRPC
throttling rules) makes RESOURCE_EXHAUSTED retryable only when the server sends
``google.rpc.RetryInfo``: without it the collector is out of quota for good (a payload
over its limit, say) and a retry only adds load.  The SDK's exporters (1.39 to 1.45)
retry it on their own back-off whatever the server sent, up to the export timeout.

:func:`honour_retry_info` wraps the exporter's stub factory (``_stub``) and rebuilds its
client (``_client``) on its channel (``_channel``): a RESOURCE_EXHAUSTED answer without
``RetryInfo`` reaches the exporter's retry loop carrying a ``RetryInfo`` whose delay
(:data:`NEVER`) is past any export deadline, so the loop's own rule (a back-off longer
than the time left ends the export) gives up after that one attempt and logs the real
status code.  Every other answer, RESOURCE_EXHAUSTED with ``RetryInfo`` included,
reaches the loop untouched.  The SDK rebuilds its client from ``_stub`` when it
reconnects (1.45 on UNAVAILABLE), so the rule survives a reconnection.

The probe (:func:`retry_info_only_supported`) builds a real exporter, wraps it, puts a
stand-in stub answering RESOURCE_EXHAUSTED behind the wrapper and exports one empty
batch through the SDK's own loop: the path is active only if that took exactly one
attempt (a second one ends the probe at once, after the SDK's first back-off of about
a second).  Otherwise the exporter is left as the SDK built it (the public behaviour:
RESOURCE_EXHAUSTED retried until the export timeout).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo  # type: ignore[import-untyped]

from ._probes import decide, register

__all__ = ["NEVER", "RETRY_INFO_ONLY", "honour_retry_info", "retry_info_only_supported"]

RETRY_INFO_ONLY: Final = "otlp_grpc.retry_info_only"
RETRY_INFO_KEY: Final = "google.rpc.retryinfo-bin"
NEVER: Final = 315_576_000_000  # seconds: the longest delay a protobuf Duration holds
_NEVER_BIN: Final = RetryInfo(retry_delay=Duration(seconds=NEVER)).SerializeToString()
_EXPORTER_LOGGER: Final = "opentelemetry.exporter.otlp.proto.grpc.exporter"


def _trailing(error: grpc.RpcError) -> tuple[tuple[str, str | bytes], ...]:
    """An error's trailing metadata (none where the error carries no call's)."""
    return tuple(getattr(error, "trailing_metadata", lambda: ())() or ())


def _has_retry_info(error: grpc.RpcError) -> bool:
    return any(key == RETRY_INFO_KEY for key, _ in _trailing(error))


class _NotRetryable(grpc.RpcError):  # type: ignore[misc]  # grpc is untyped
    """A RESOURCE_EXHAUSTED answer without ``RetryInfo``, as the exporter's loop sees it:
    the same code and details, and a ``RetryInfo`` delay no deadline reaches."""

    def __init__(self, error: grpc.RpcError) -> None:
        super().__init__(str(error))
        self.error = error

    def code(self) -> grpc.StatusCode:
        """The collector's status code."""
        code: grpc.StatusCode = self.error.code()
        return code

    def details(self) -> str | None:
        """The collector's message."""
        details: str | None = self.error.details()
        return details

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        """The collector's trailing metadata and the never-elapsing ``RetryInfo``."""
        return (*_trailing(self.error), (RETRY_INFO_KEY, _NEVER_BIN))

    def __str__(self) -> str:
        return str(self.error)


class _Stub:
    """A stub whose ``Export`` answers RESOURCE_EXHAUSTED without ``RetryInfo`` as not
    retryable; everything else passes through."""

    def __init__(self, stub: Any) -> None:
        self.stub = stub

    def Export(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped stub's ``Export``."""
        try:
            return self.stub.Export(*args, **kwargs)
        except grpc.RpcError as error:
            code = getattr(error, "code", lambda: None)()
            if code is grpc.StatusCode.RESOURCE_EXHAUSTED and not _has_retry_info(error):
                raise _NotRetryable(error) from error
            raise


def _stub_factory(build: Callable[[Any], Any]) -> Callable[[Any], _Stub]:
    def stub(channel: Any) -> _Stub:
        return _Stub(build(channel))

    return stub


def _wrap(exporter: Any) -> bool:
    """Wrap ``exporter``'s stub factory and rebuild its client; False when the exporter
    lacks the fields."""
    build, channel = getattr(exporter, "_stub", None), getattr(exporter, "_channel", None)
    if not callable(build) or channel is None or not hasattr(exporter, "_client"):
        return False
    exporter._stub = _stub_factory(build)
    exporter._client = exporter._stub(channel)
    return True


def honour_retry_info(exporter: Any) -> Any:
    """``exporter`` (an SDK OTLP/gRPC exporter) retrying RESOURCE_EXHAUSTED only when the
    collector sent ``RetryInfo``; left as built when the probe fails."""
    if decide(RETRY_INFO_ONLY, retry_info_only_supported):
        _wrap(exporter)
    return exporter


class _Exhausted(grpc.RpcError):  # type: ignore[misc]  # grpc is untyped
    """The stand-in collector's answer: RESOURCE_EXHAUSTED, no metadata."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.RESOURCE_EXHAUSTED

    def details(self) -> str:
        return "probe"

    def trailing_metadata(self) -> tuple[()]:
        return ()


class _Retried(Exception):
    """A second attempt reached the stand-in stub: the wrapper did not take."""


class _ExhaustedStub:
    def __init__(self, channel: Any) -> None:
        self.attempts = 0

    def Export(self, *args: Any, **kwargs: Any) -> Any:
        self.attempts += 1
        if self.attempts > 1:
            raise _Retried  # not an RpcError: out of the SDK's loop at once
        raise _Exhausted()


def _quiet(record: logging.LogRecord) -> bool:
    return False


def retry_info_only_supported() -> bool:
    """Whether a wrapped SDK exporter gives up on RESOURCE_EXHAUSTED without ``RetryInfo``
    after one attempt (the SDK's loop run for real against a stand-in stub)."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    exporter: Any = OTLPSpanExporter(endpoint="http://127.0.0.1:1", insecure=True, timeout=5)
    logger = logging.getLogger(_EXPORTER_LOGGER)
    logger.addFilter(_quiet)  # the probe's one failed export is not the user's business
    try:
        exporter._stub = _ExhaustedStub
        if not _wrap(exporter):
            return False
        exporter._export([])
        return bool(exporter._client.stub.attempts == 1)
    finally:
        logger.removeFilter(_quiet)
        exporter.shutdown()


register({RETRY_INFO_ONLY: retry_info_only_supported})
