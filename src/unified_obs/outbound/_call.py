"""One outbound HTTP request: its CLIENT span, the injected trace context and its duration.

:class:`ClientRecorder` is built once per ``setup()`` (tracer, the
``http.client.request.duration`` histogram and its cached children); :meth:`~ClientRecorder.start`
opens a :class:`ClientCall` for each request a hooked client sends, and the call records
itself once, when the response headers have arrived or the request failed.  Attributes
follow the stable HTTP semantic conventions: ``http.request.method`` (``_OTHER`` plus
``http.request.method_original`` for unknown ones), ``server.address``, ``server.port``,
``url.full`` (credentials and sensitive query values redacted),
``http.response.status_code`` and ``error.type``.  Nothing here raises into the caller:
a failure is logged once and the request goes on unobserved.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, MutableMapping
from typing import Any, Final, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from .. import metrics, redact
from .._compat.opentelemetry import (
    SUPPRESS_HTTP_INSTRUMENTATION_KEY,
    SUPPRESS_INSTRUMENTATION_KEY,
)
from .._http import error_type, internal_error, normalise_method, span_name
from .._semconv import SCHEMA_URL, library_version

__all__ = ["ClientCall", "ClientRecorder", "Target", "describe_url"]

DURATION: Final = "http.client.request.duration"
LABELS: Final = (
    "http.request.method",
    "server.address",
    "server.port",
    "http.response.status_code",
    "error.type",
)
_CHILD_CACHE_LIMIT: Final = 10_000
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class Target(NamedTuple):
    """Where a request goes: ``server.address``, ``server.port`` and the redacted ``url.full``."""

    address: str
    port: int
    full: str


@functools.lru_cache(maxsize=1024)
def describe_url(url: str) -> Target:
    """The semconv view of ``url``: host, port (the scheme's default when none is given) and
    the URL with user and password replaced by ``REDACTED`` and sensitive query values by
    ``[REDACTED]`` (the process's redaction policy, see :mod:`unified_obs.redact`)."""
    parts = urlsplit(url)
    address = parts.hostname or ""
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError:  # a port out of range: keep the request, report no port
        port = 0
    netloc = parts.netloc
    if "@" in netloc:
        host = netloc.rpartition("@")[2]
        netloc = f"REDACTED:REDACTED@{host}" if ":" in netloc.rpartition("@")[0] else host
    query = redact.policy().query(parts.query) if parts.query else ""
    if netloc == parts.netloc and query == parts.query and not parts.fragment:
        return Target(address, port, url)
    return Target(address, port, urlunsplit((parts.scheme, netloc, parts.path, query, "")))


def suppressed() -> bool:
    """Whether the current context asks instrumentations to stay out (our excluded paths,
    OpenTelemetry's ``suppress_instrumentation``/``suppress_http_instrumentation``)."""
    return bool(
        otel_context.get_value(SUPPRESS_INSTRUMENTATION_KEY)
        or otel_context.get_value(SUPPRESS_HTTP_INSTRUMENTATION_KEY)
    )


class ClientRecorder:
    """Tracer and histogram for outbound requests; one per ``setup()``."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        excluded: tuple[str, ...] = (),
    ) -> None:
        self.excluded = excluded  # URL prefixes never observed: our own OTLP endpoints
        self.tracer = trace.get_tracer(
            "unified_obs.outbound", library_version(), tracer_provider, schema_url=SCHEMA_URL
        )
        self.duration = metrics.histogram(
            DURATION,
            "Duration of HTTP client requests.",
            labels=LABELS,
            unit="s",
            buckets=metrics.SEMCONV_DURATION_BUCKETS,
        )
        self.observers: dict[tuple[str, str, int, int, str], Callable[[float], None]] = {}

    def start(self, method: str, url: str, headers: MutableMapping[str, Any]) -> ClientCall | None:
        """Open the CLIENT span of a request about to be sent and write its trace context
        into ``headers``; ``None`` (send it unobserved) when suppressed or on any failure."""
        try:
            if suppressed() or (self.excluded and url.startswith(self.excluded)):
                return None
            return self._start(method, url, headers)
        except Exception:
            internal_error("outbound_start")
            return None

    def _start(self, method: str, url: str, headers: MutableMapping[str, Any]) -> ClientCall:
        known = normalise_method(method)  # OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS applies too
        target = describe_url(url)
        attributes: dict[str, Any] = {
            "http.request.method": known,
            "server.address": target.address,
            "server.port": target.port,
            "url.full": target.full,
        }
        if known == "_OTHER":
            attributes["http.request.method_original"] = method
        start_ns = time.time_ns()
        span = self.tracer.start_span(
            span_name(known, None), None, SpanKind.CLIENT, attributes, None, start_ns
        )
        propagate.inject(headers, context=trace.set_span_in_context(span))
        return ClientCall(self, span, known, target, start_ns)

    def observer(
        self, method: str, address: str, port: int, status: int, error: str
    ) -> Callable[[float], None]:
        """The cached ``observe`` of the duration histogram child for these labels."""
        key = (method, address, port, status, error)
        observe = self.observers.get(key)
        if observe is None:
            code = str(status) if status else ""
            observe = self.duration.labels(method, address, port, code, error).observe
            if len(self.observers) < _CHILD_CACHE_LIMIT:
                self.observers[key] = observe
        return observe


class ClientCall:
    """One request in flight; :meth:`finish` or :meth:`fail` records it, once."""

    __slots__ = ("method", "recorder", "span", "start_mono", "start_ns", "target")

    def __init__(
        self, recorder: ClientRecorder, span: Span, method: str, target: Target, start_ns: int
    ) -> None:
        self.recorder = recorder
        self.span = span
        self.method = method
        self.target = target
        self.start_ns = start_ns
        self.start_mono = time.perf_counter_ns()

    def finish(self, status: int) -> None:
        """The response headers arrived with ``status``; 4xx and 5xx are errors for a client."""
        self._record(status, str(status) if status >= 400 else "")

    def fail(self, exc: BaseException) -> None:
        """The request failed with ``exc`` before a response came (or was cancelled).  Only
        its class is kept (``error.type``): a client's message may quote the URL, secrets
        included (requests' does), so no exception event is recorded."""
        self._record(0, error_type(exc))

    def _record(self, status: int, error: str) -> None:
        try:
            elapsed = time.perf_counter_ns() - self.start_mono
            target = self.target
            observe = self.recorder.observer(
                self.method, target.address, target.port, status, error
            )
            observe(elapsed / 1e9)
            span = self.span
            if span.is_recording():
                self._annotate(span, status, error)
            span.end(self.start_ns + elapsed)
        except Exception:
            internal_error("outbound_finish")

    @staticmethod
    def _annotate(span: Span, status: int, error: str) -> None:
        if status:
            span.set_attribute("http.response.status_code", status)
        if error:
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR))
