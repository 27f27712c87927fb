"""Pure HTTP helpers and options shared by the ASGI and WSGI middleware.

Span names, method normalisation (``_OTHER``), request-id validation, route templates
from Starlette/FastAPI scopes, the suppressed context for excluded paths, and
:class:`HttpOptions`.  Attributes follow the stable OpenTelemetry HTTP semantic
conventions only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from random import getrandbits
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.context import Context, set_value
from opentelemetry.trace import TracerProvider

from .. import endpoints
from .._compat.opentelemetry import SUPPRESS_INSTRUMENTATION_KEY
from ..errors import ConfigError
from ..redact import Redactor

__all__ = [
    "ALWAYS_SENSITIVE",
    "EXCLUDED",
    "KNOWN_METHODS",
    "MAX_PROPAGATION_HEADER",
    "ROUTE_KEY",
    "HttpOptions",
    "RouteResolver",
    "call_resolver",
    "configure_known_methods",
    "error_type",
    "internal_error",
    "known_methods",
    "new_request_id",
    "normalise_method",
    "not_allowed",
    "span_name",
    "starlette_route",
    "suppressed_context",
    "unavailable",
    "valid_request_id",
    "valid_request_id_bytes",
]

KNOWN_METHODS: Final = frozenset(
    ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE")
)
"""The conventions' known methods (RFC 9110, RFC 5789 and QUERY), the default list."""
_known: Final[dict[str, str]] = {method: method for method in KNOWN_METHODS}
"""Every method known now, mapped to itself: the recorders look methods up here, and
:func:`configure_known_methods` rewrites it in place."""
MAX_PROPAGATION_HEADER: Final = 8192
"""Longest ``traceparent``/``tracestate``/``baggage`` value read; longer ones are ignored."""
ROUTE_KEY: Final = "unified_obs.route"
"""Scope/environ key where an app (or ``unified_obs.django``) may put the route template."""
RouteResolver = Callable[[Mapping[str, Any]], "str | None"]
"""``(scope or environ) -> route template or None``, called after the app has routed."""

_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:+/=@-]{1,128}")
_REQUEST_ID_BYTES: Final = re.compile(rb"[A-Za-z0-9._:+/=@-]{1,128}")
ALWAYS_SENSITIVE: Final = frozenset(
    ("authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key")
)
"""Headers captured as ``[REDACTED]`` even when allowlisted (unless listed as unredacted)."""
EXCLUDED: Final = "excluded"
"""Marker for user-excluded paths in the middleware's table of special paths."""


def normalise_method(method: str) -> str:
    """``method`` if it is a known HTTP method, else ``_OTHER`` (semantic conventions)."""
    return method if method in _known else "_OTHER"


def known_methods() -> dict[str, str]:
    """The live table of known methods (method -> itself), shared by every recorder."""
    return _known


def configure_known_methods(methods: Iterable[str] | None = None) -> None:
    """Replace the known methods (``OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS``: a full
    override, case-sensitive, as the conventions require); ``None``: the default list."""
    chosen = KNOWN_METHODS if methods is None else tuple(methods)
    _known.clear()
    _known.update({method: method for method in chosen})


def span_name(method: str, route: str | None) -> str:
    """``{method} {route}``, ``{method}`` without a route, ``HTTP`` for unknown methods."""
    if method == "_OTHER":
        method = "HTTP"
    return f"{method} {route}" if route else method


def valid_request_id(value: str) -> bool:
    """Whether an incoming request id is short and made of safe characters only."""
    return _REQUEST_ID.fullmatch(value) is not None


def new_request_id() -> str:
    """A fresh random request id: 32 lowercase hex characters."""
    return getrandbits(128).to_bytes(16, "big").hex()  # faster than any formatting


def error_type(exc: BaseException) -> str:
    """``error.type`` for an exception: its fully qualified class name."""
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def valid_request_id_bytes(value: bytes) -> bool:
    """:func:`valid_request_id` for a raw header value."""
    return _REQUEST_ID_BYTES.fullmatch(value) is not None


def unavailable(where: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """The 500 answer of a built-in endpoint whose renderer failed (logged once)."""
    internal_error(where)
    return 500, [("content-type", "text/plain")], b"unavailable\n"


def not_allowed() -> tuple[int, list[tuple[str, str]], bytes]:
    """The 405 answer of the built-in endpoints to anything but GET and HEAD."""
    return 405, [("allow", "GET, HEAD"), ("content-type", "text/plain")], b"method not allowed\n"


def suppressed_context() -> Context:
    """A context under which instrumentations make no spans: the suppression flag plus an
    unsampled parent, so parent-based samplers drop any span started below it."""
    parent = trace.NonRecordingSpan(
        trace.SpanContext(getrandbits(128) or 1, getrandbits(64) or 1, is_remote=False)
    )
    return set_value(SUPPRESS_INSTRUMENTATION_KEY, True, trace.set_span_in_context(parent))


def call_resolver(resolver: RouteResolver, carrier: Mapping[str, Any]) -> str | None:
    """The user's route resolver, made safe: a failure means "no route"."""
    try:
        found = resolver(carrier)
    except Exception:
        internal_error("route_resolver")
        return None
    return found if isinstance(found, str) and found else None


def starlette_route(scope: Mapping[str, Any], root_path: str) -> str | None:
    """The route template Starlette/FastAPI routers leave in ``scope["route"]`` (convertors
    dropped), with the prefixes of the mounts it went through (``root_path`` is the one
    the request came with)."""
    route = scope.get("route")
    if route is None:
        return None
    cached = _templates.get(id(route))  # routes define __eq__, so they are unhashable
    if cached is not None and cached[0] is route:
        template = cached[1]
    else:
        template = _template_of(route)
        if len(_templates) < _TEMPLATE_CACHE_LIMIT:
            _templates[id(route)] = (route, template)  # holding it keeps its id unique
    if not template:
        return None
    prefix: str = scope.get("root_path", "")[len(root_path) :]
    return prefix + template


_TEMPLATE_CACHE_LIMIT: Final = 10_000
_templates: dict[int, tuple[Any, str]] = {}
"""id(route) -> (route, its template; ``""``: none), so each route is inspected once."""


def _template_of(route: Any) -> str:
    """The template of one Starlette route: ``path_format`` (convertors dropped:
    ``/orders/{id:int}`` is ``/orders/{id}``), ``/{path}`` for a Mount (its own matched
    path is already in ``root_path``), ``""`` when there is none."""
    try:
        if hasattr(route, "routes"):
            return "/{path}"
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
    except Exception:  # an odd route object: no template rather than a failed request
        return ""
    return template if isinstance(template, str) else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpOptions:
    """How the middleware behaves; every field is a keyword of ``ObservabilityMiddleware``."""

    metrics_path: str | None = "/metrics"
    probe_paths: Mapping[str, str] = field(default_factory=lambda: dict(endpoints.PROBE_PATHS))
    excluded_paths: tuple[str, ...] = ()
    instrument_endpoints: bool = False
    access_log: bool = True
    request_id_header: str | None = "x-request-id"
    capture_request_headers: tuple[str, ...] = ()
    capture_response_headers: tuple[str, ...] = ()
    unredacted_headers: tuple[str, ...] = ()
    server_timing: bool = False
    traceresponse: bool = False
    route_resolver: RouteResolver | None = None
    unmatched_route: str = ""
    """``http.route`` label of requests no route matched; empty: none (the conventions
    forbid a made-up route), so they share the series without ``http.route``."""
    body_size_metrics: bool = False
    health_details: bool | None = None
    """Per-check details in probe bodies; ``None``: as ``setup(health_details=...)`` says."""
    tracer_provider: TracerProvider | None = None
    redactor: Redactor | None = None

    @classmethod
    def build(cls, options: HttpOptions | None, changes: Mapping[str, Any]) -> HttpOptions:
        """``options`` (or the defaults) with ``changes``; unknown names raise ``ConfigError``."""
        base = options or cls()
        known = cls.__dataclass_fields__
        for name, value in changes.items():
            if name not in known:
                raise ConfigError(name, value, "an HttpOptions field: " + ", ".join(known))
        values = {name: getattr(base, name) for name in known}
        values.update(changes)
        for name in ("excluded_paths", "capture_request_headers", "capture_response_headers"):
            values[name] = tuple(values[name])
        values["unredacted_headers"] = tuple(values["unredacted_headers"])
        return cls(**values)


_internal_log: Final = logging.getLogger("unified_obs")
_warned: set[str] = set()


def internal_error(where: str) -> None:
    """Our own bug or a broken exporter: warn once per place, never raise into the app."""
    if where not in _warned:
        _warned.add(where)
        _internal_log.warning("unified_obs: HTTP middleware failed in %s", where, exc_info=True)
