"""The recorder and the per-request exchange shared by the ASGI and WSGI middleware.

:class:`Recorder` is built once per middleware: tracer, metric instruments with cached
bound children, the access logger and the header-capture plan.  :class:`Exchange` is
one request in flight; the adapters extend it with their own ``send``/``start_response``
wrappers and call :meth:`Exchange.finish` (or :meth:`Exchange.finish_soon`, which leaves
the recording to the event loop's next turn) exactly once, when the body has been sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from .. import logs, metrics, redact
from .._semconv import SCHEMA_URL, exception_attributes, library_version
from ..context import with_span
from ..redact import REDACTED, Redactor, scrub_urls
from . import (
    ALWAYS_SENSITIVE,
    EXCLUDED,
    HttpOptions,
    error_type,
    internal_error,
    known_methods,
    span_name,
)
from .access_line import EVENT, LOGGER
from .next_turn import defer

__all__ = ["Exchange", "Recorder", "trace_headers"]

_CHILD_CACHE_LIMIT: Final = 10_000
_SIZE_BUCKETS: Final = (100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000)


class Recorder:
    """Everything a request needs, computed once per middleware instance."""

    def __init__(self, options: HttpOptions, component: str) -> None:
        self.options = options
        provider = options.tracer_provider
        version = library_version()
        self.tracer = (provider or trace.get_tracer_provider()).get_tracer(
            component, version, schema_url=SCHEMA_URL
        )
        self.log = logs.get_logger(LOGGER)
        self.error_log = logs.get_logger("unified_obs.http")
        self.unredacted = frozenset(n.lower() for n in options.unredacted_headers)
        self.unmatched = options.unmatched_route
        self.access_log = options.access_log
        self.methods = known_methods()  # live: setup() may replace the known methods
        self.special = self._special_paths(options)
        self.excluded_prefixes = tuple(p[:-1] for p in options.excluded_paths if p.endswith("*"))
        self.request_headers = self._capture_plan(options.capture_request_headers, "request")
        self.response_headers = self._capture_plan(options.capture_response_headers, "response")
        self.wants_response_headers = bool(self.response_headers)
        self.wants_trace_headers = options.traceresponse or options.server_timing
        self._instruments()

    def _special_paths(self, options: HttpOptions) -> dict[str, str]:
        special = {p: EXCLUDED for p in options.excluded_paths if not p.endswith("*")}
        special.update({path: kind for path, kind in (options.probe_paths or {}).items() if path})
        if options.metrics_path:
            special[options.metrics_path] = "metrics"
        return special

    @property
    def redactor(self) -> Redactor:
        """The middleware's own redactor, else the process's policy (``setup(redact_keys=
        ...)`` included), read per request: a middleware built before ``setup()`` follows it."""
        return self.options.redactor or redact.policy()

    def _capture_plan(self, names: tuple[str, ...], direction: str) -> dict[str, tuple[str, bool]]:
        """Lowercase header name -> (span attribute, redact?)."""
        unredacted = {n.lower() for n in self.options.unredacted_headers}
        plan = {}
        for name in names:
            low = name.lower()
            sensitive = low in ALWAYS_SENSITIVE or self.redactor.is_sensitive(low)
            plan[low] = (f"http.{direction}.header.{low}", sensitive and low not in unredacted)
        return plan

    def _instruments(self) -> None:
        self.duration = metrics.histogram(
            "http.server.request.duration",
            "Duration of HTTP server requests.",
            labels=(
                "http.request.method",
                "http.route",
                "http.response.status_code",
                "url.scheme",
                "error.type",
                "network.protocol.version",
            ),
            unit="s",
            buckets=metrics.SEMCONV_DURATION_BUCKETS,
        )
        self.active = metrics.up_down_counter(
            "http.server.active_requests",
            "Number of active HTTP server requests.",
            labels=("http.request.method", "url.scheme"),
            unit="{request}",
        )
        self.observers: dict[tuple[str, str, int, str, str, str], Callable[[float], None]] = {}
        self.actives: dict[tuple[str, str], Any] = {}
        self.sizes: tuple[Any, Any] | None = None
        if self.options.body_size_metrics:
            self.sizes = tuple(  # type: ignore[assignment]
                metrics.histogram(
                    f"http.server.{kind}.body.size",
                    f"Size of HTTP server {kind} bodies.",
                    labels=("http.request.method", "http.route", "http.response.status_code"),
                    unit="By",
                    buckets=_SIZE_BUCKETS,
                )
                for kind in ("request", "response")
            )

    def active_child(self, method: str, scheme: str) -> Any:
        """The cached ``http.server.active_requests`` child for ``(method, scheme)``."""
        key = (method, scheme)
        child = self.actives.get(key)
        if child is None:
            child = self.active.labels(method, scheme)
            if len(self.actives) < _CHILD_CACHE_LIMIT:
                self.actives[key] = child
        return child

    def observer(
        self, method: str, route: str, status: int, scheme: str, error: str, protocol: str
    ) -> Callable[[float], None]:
        """The cached ``observe`` of the duration histogram child for these labels."""
        key = (method, route, status, scheme, error, protocol)
        observe = self.observers.get(key)
        if observe is None:
            code = str(status) if status else ""
            observe = self.duration.labels(method, route, code, scheme, error, protocol).observe
            if len(self.observers) < _CHILD_CACHE_LIMIT:
                self.observers[key] = observe
        return observe

    def capture(self, plan: dict[str, tuple[str, bool]], headers: Any) -> dict[str, Any]:
        """Span attributes for the allowlisted ``(name, value)`` pairs in ``headers``: every
        line of a repeated header, sensitive ones (by the redaction policy in force now)
        redacted, URL user-info in the others too."""
        redactor = self.redactor
        found: dict[str, list[str]] = {}
        for raw_name, raw_value in headers:
            name = raw_name.decode("latin-1").lower() if type(raw_name) is bytes else raw_name
            entry = plan.get(name.lower())
            if entry is not None:
                value = raw_value.decode("latin-1") if type(raw_value) is bytes else raw_value
                low = name.lower()
                hidden = entry[1] or (low not in self.unredacted and redactor.is_sensitive(low))
                found.setdefault(entry[0], []).append(REDACTED if hidden else scrub_urls(value))
        return found

    def extract(self, carrier: dict[str, str] | None) -> Context | None:
        """The incoming W3C context (``None`` when no propagation header came)."""
        if not carrier:
            return None
        try:
            return propagate.extract(carrier)
        except Exception:  # a broken propagator must never fail the request
            return None


class Exchange:
    """One request in flight: what the adapters learn and what :meth:`finish` records."""

    __slots__ = (
        "active",
        "bytes_in",
        "bytes_out",
        "client",
        "context",
        "disconnected",
        "done",
        "end_mono",
        "error",
        "exc",
        "fault",
        "method",
        "method_original",
        "path",
        "protocol",
        "recorder",
        "request_id",
        "route",
        "scheme",
        "span",
        "start_mono",
        "start_ns",
        "status",
    )
    span: Span
    context: Context
    active: Any
    start_ns: int
    start_mono: int

    def __init__(self, recorder: Recorder, method: str, scheme: str, path: str) -> None:
        self.recorder = recorder
        self.method_original = method
        self.method = recorder.methods.get(method) or "_OTHER"
        self.scheme = scheme
        self.path = path
        self.protocol = ""  # network.protocol.version, set by the adapter
        self.status = 0
        self.bytes_in = self.bytes_out = 0
        self.route: str | None = None
        self.error: str | None = None
        self.exc: BaseException | None = None
        self.fault: str | None = None  # the kind of fault injected on purpose, if any
        self.done = self.disconnected = False
        self.end_mono = 0
        self.client: str | None = None
        self.request_id = ""

    def mark_fault(self, fault: Any) -> None:
        """A fault was injected on purpose (``resilience.faults``): flag the access line
        with its kind (the span is marked by the injector)."""
        self.fault = str(fault.kind)

    def begin(self, attributes: dict[str, Any], carrier: dict[str, str] | None) -> None:
        """Start the SERVER span (child of the incoming trace) and count the request active."""
        recorder = self.recorder
        parent = recorder.extract(carrier) if carrier else None
        method = self.method
        if method == "_OTHER":
            attributes["http.request.method_original"] = self.method_original
        self.start_ns = start_ns = time.time_ns()
        self.start_mono = time.perf_counter_ns()
        self.span = recorder.tracer.start_span(
            span_name(method, None), parent, SpanKind.SERVER, attributes, start_time=start_ns
        )
        self.context = with_span(self.span, parent)
        self.active = recorder.active_child(method, self.scheme)
        self.active.up()

    def fail(self, exc: BaseException) -> None:
        """The app raised: record it on the span and finish (or log it if already finished)."""
        if self.done:
            if isinstance(exc, Exception):
                self.recorder.error_log.error("http.exception_after_response", exc_info=exc)
            return
        self.exc = exc
        self.error = error_type(exc)
        if not self.status and isinstance(exc, Exception):
            self.status = 500
        if isinstance(exc, Exception) and self.span.is_recording():
            # an error page already sent (5xx) ends the span then: the event must not be later
            sent = self.start_ns + self.end_mono - self.start_mono if self.end_mono else None
            self.span.add_event("exception", exception_attributes(exc), timestamp=sent)
        self.finish()

    def finish(self) -> None:
        """Record the duration, end the span and write the access log line, once."""
        if self.done:
            return
        self.done = True
        self._complete()

    def finish_soon(self) -> None:
        """:meth:`finish` for a request whose ``end_mono`` is set, with the recording left
        to the event loop's next turn (:mod:`~unified_obs._http.next_turn`)."""
        self.done = True
        defer(self._complete)

    def _complete(self) -> None:
        try:
            self._record((self.end_mono or time.perf_counter_ns()) - self.start_mono)
        except Exception:
            internal_error("finish")

    def _record(self, elapsed: int) -> None:
        recorder = self.recorder
        status, route, method = self.status, self.route, self.method
        error = self.error or (str(status) if status >= 500 else None)
        label_route = route or recorder.unmatched
        observe = recorder.observer(
            method, label_route, status, self.scheme, error or "", self.protocol
        )
        observe(elapsed / 1e9)
        self.active.down()
        if recorder.sizes is not None:
            self._record_sizes(recorder.sizes, label_route)
        if self.span.is_recording():
            self._annotate(self.span, status, route, error)
        self.span.end(self.start_ns + elapsed)
        if recorder.access_log:
            self._log(elapsed, route, error)
        elif isinstance(self.exc, Exception):
            recorder.error_log.error("http.exception", exc_info=self.exc)

    def _record_sizes(self, sizes: tuple[Any, Any], route: str) -> None:
        code = str(self.status) if self.status else ""
        sizes[0].labels(self.method, route, code).observe(self.bytes_in)
        sizes[1].labels(self.method, route, code).observe(self.bytes_out)

    def _annotate(self, span: Span, status: int, route: str | None, error: str | None) -> None:
        attributes: dict[str, Any] = {}
        if status:
            attributes["http.response.status_code"] = status
        if route:
            attributes["http.route"] = route
            span.update_name(span_name(self.method, route))
        if error:
            attributes["error.type"] = error
            span.set_status(Status(StatusCode.ERROR))
        if self.disconnected:
            attributes["unified_obs.client_disconnected"] = True
        span.set_attributes(attributes)

    def _log(self, elapsed: int, route: str | None, error: str | None) -> None:
        """The access line, with the error fields of a failed or cut-short request."""
        fields: dict[str, Any] = {
            "method": self.method_original,
            "path": self.path,
            "route": route,
            "status": self.status,
            "duration_ms": (elapsed + 500) // 1000 / 1000,  # rounded half up to the µs
            "bytes": self.bytes_out,
            "client": self.client,
        }
        if error:
            fields["error"] = error
        if self.disconnected:
            fields["client_disconnected"] = True
        if self.fault is not None:
            fields["fault"] = self.fault
        log = self.recorder.log
        if isinstance(self.exc, Exception):
            log.error(EVENT, exc_info=self.exc, **fields)
        elif self.status >= 500:
            log.error(EVENT, **fields)
        else:
            log.info(EVENT, **fields)


def trace_headers(exchange: Exchange, options: HttpOptions) -> list[tuple[bytes, bytes]]:
    """``traceresponse`` and ``server-timing`` response headers for the request's span."""
    span_context = exchange.span.get_span_context()
    if not span_context.is_valid:
        return []
    value = (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
        f"{span_context.trace_flags:02x}"
    ).encode("ascii")
    headers = []
    if options.traceresponse:
        headers.append((b"traceresponse", value))
    if options.server_timing:
        elapsed = (time.perf_counter_ns() - exchange.start_mono) / 1e6
        timing = b'traceparent;desc="%s", app;dur=%.3f' % (value, elapsed)
        headers.append((b"server-timing", timing))
    return headers
