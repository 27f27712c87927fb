"""FastAPI's private names, behind a probe: one server span when FastAPI's own telemetry is on.

FastAPI 0.165+ traces and meters every request itself unless told not to
(``FastAPI(telemetry={...})``), so under our middleware each request had two SERVER spans and
two ``http.server.request.duration`` recordings.  FastAPI has no public switch an outer
middleware can use: it steps aside only when its own middleware stack holds contrib's
``OpenTelemetryMiddleware`` (checked by type name) or when the scope already carries its
per-request record under ``"fastapi.telemetry"`` (what an outer FastAPI app leaves for a
mounted one).  ``fastapi.request_telemetry`` uses the latter: the middleware hands FastAPI a
record (``fastapi.telemetry._api._RequestTelemetry``) that holds *our* server span, and puts
it in the context under ``_REQUEST_TELEMETRY_KEY``.  FastAPI then makes no span, metric or
log of its own, still names our span by its route, and its operation spans
(``fastapi.dependencies``, ``fastapi.endpoint``, ``fastapi.serialize`` ...) become children
of our span; ``fastapi.telemetry.get_telemetry_data()`` keeps working inside the request.
The app's own ``telemetry={"tracing": False}`` or ``{"operation_spans": False}`` is honoured.

The probe checks the record's fields, the context key and that ``FastAPI.__call__`` looks
for the scope key.  Fallback (a FastAPI whose internals differ): one warning that names
``FastAPI(telemetry={...})``, the public way to turn FastAPI's telemetry off.  FastAPI
before 0.165 has no telemetry and needs nothing.
"""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Callable, MutableMapping
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.context import Context, set_value

from ._probes import decide, register

__all__ = ["REQUEST_TELEMETRY", "Adopter", "adopter", "release", "step_aside"]

REQUEST_TELEMETRY: Final = "fastapi.request_telemetry"
SCOPE_KEY: Final = "fastapi.telemetry"
_FIELDS: Final = ("span", "span_method", "tracer", "logger", "data", "_mount_prefix")
_SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.44.0"
_MAX_DEPTH: Final = 32
_log: Final = logging.getLogger("unified_obs")

Adopter = Callable[[MutableMapping[str, Any], trace.Span, str, Context], Context]
"""``(scope, our server span, span method, context) -> context the app runs in``."""


def _record_works() -> bool:
    """FastAPI's record and key are as this module expects, and its ``__call__`` steps
    aside for a scope that carries the record."""
    from fastapi import FastAPI
    from fastapi.telemetry import _api

    fields = inspect.signature(_api._RequestTelemetry).parameters
    if not all(name in fields for name in _FIELDS):
        return False
    record = _api._RequestTelemetry(span=None, span_method="GET", tracer=None, logger=None)
    key_works = _api._get_request_telemetry(set_value(_api._REQUEST_TELEMETRY_KEY, record))
    return key_works is record and f'"{SCOPE_KEY}" in scope' in inspect.getsource(FastAPI.__call__)


register({REQUEST_TELEMETRY: _record_works})


def _fastapi_in(app: Any) -> Any:
    """The FastAPI app ``app`` is or wraps (following ``.app``), or ``None``."""
    module = sys.modules.get("fastapi")
    fastapi_type = getattr(module, "FastAPI", None)
    for _ in range(_MAX_DEPTH):
        if fastapi_type is not None and isinstance(app, fastapi_type):
            return app
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


def adopter(app: Any) -> Adopter | None:
    """What the middleware calls per request for a FastAPI app with telemetry; ``None`` for
    any other app, an older FastAPI, or (after one warning) a FastAPI we cannot adopt."""
    found = _fastapi_in(app)
    config = getattr(found, "_telemetry", None)
    if found is None or not isinstance(config, dict):
        return None
    if not decide(REQUEST_TELEMETRY, _record_works):
        _warn_fallback(config)
        return None
    return _make_adopter(config)


def _make_adopter(config: dict[str, Any]) -> Adopter:
    from fastapi import __version__
    from fastapi.telemetry import _api

    record_type, key = _api._RequestTelemetry, _api._REQUEST_TELEMETRY_KEY
    spans = bool(config.get("tracing", True) and config.get("operation_spans", True))
    provider = config.get("tracer_provider")
    tracer = trace.get_tracer("fastapi", __version__, provider, schema_url=_SCHEMA_URL)

    def adopt(
        scope: MutableMapping[str, Any], span: trace.Span, method: str, context: Context
    ) -> Context:
        prefix = scope.get("app_root_path", scope.get("root_path", "")).rstrip("/")
        record = record_type(
            span=span, span_method=method, tracer=tracer if spans else None, logger=None
        )
        record._mount_prefix = prefix
        scope[SCOPE_KEY] = record
        return set_value(key, record, context)

    return adopt


def release(scope: MutableMapping[str, Any]) -> None:
    """The request is over: FastAPI's data is dropped (``get_telemetry_data()`` returns
    ``None`` from now on, as FastAPI's own telemetry does)."""
    record = scope.pop(SCOPE_KEY, None)
    if record is not None:
        record.data = None


def step_aside(scope: MutableMapping[str, Any]) -> None:
    """A websocket connection: FastAPI makes no span of its own (ours is the connection's);
    ``None`` under the scope key is what FastAPI itself leaves for an excluded connection."""
    scope[SCOPE_KEY] = None


def _warn_fallback(config: dict[str, Any]) -> None:
    if config.get("tracing", True) or config.get("metrics", True):
        _log.warning(
            "unified_obs: FastAPI's built-in telemetry is on and this FastAPI version's "
            "internals are not the ones unified_obs knows, so each request gets two server "
            "spans; pass FastAPI(telemetry={'tracing': False, 'metrics': False, "
            "'logs': False}) when using unified_obs.asgi.ObservabilityMiddleware"
        )
