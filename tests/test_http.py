"""Pure HTTP helpers: span names, methods, request ids, routes, options, suppression."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, get_value

from unified_obs import _http
from unified_obs._http import HttpOptions
from unified_obs.errors import ConfigError


@pytest.mark.parametrize(
    ("method", "expected"),
    [("GET", "GET"), ("PATCH", "PATCH"), ("QUERY", "QUERY"), ("get", "_OTHER"), ("FOO", "_OTHER")],
)
def test_normalise_method_keeps_known_methods_only(method: str, expected: str) -> None:
    """Known methods (RFC 9110 + PATCH + QUERY) stay; anything else, even lowercase, is _OTHER."""
    assert _http.normalise_method(method) == expected


@pytest.mark.parametrize(
    ("method", "route", "expected"),
    [
        ("GET", "/items/{id}", "GET /items/{id}"),
        ("POST", None, "POST"),
        ("GET", "", "GET"),
        ("_OTHER", "/x", "HTTP /x"),
        ("_OTHER", None, "HTTP"),
    ],
)
def test_span_name_follows_semantic_conventions(
    method: str, route: str | None, expected: str
) -> None:
    """``{method} {route}``, the method alone without a route, ``HTTP`` for _OTHER."""
    assert _http.span_name(method, route) == expected


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("abc-123_DEF.9", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("", False),
        ("has space", False),
        ("new\nline", False),
        ('quote"', False),
        ("é", False),
    ],
)
def test_request_id_validation_bounds_length_and_characters(value: str, ok: bool) -> None:
    """Incoming ids are accepted only when short and made of safe characters (str and bytes)."""
    assert _http.valid_request_id(value) is ok
    assert _http.valid_request_id_bytes(value.encode()) is ok


def test_new_request_ids_are_unique_hex() -> None:
    """Generated ids are 32 hex characters and do not repeat."""
    ids = {_http.new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_error_type_is_the_qualified_class_name() -> None:
    """Builtins by name, everything else with its module."""
    assert _http.error_type(ValueError()) == "ValueError"
    assert _http.error_type(ConfigError("f", 1, "x")) == "unified_obs.errors.ConfigError"


def _route(path: str, *, mount: bool = False) -> Any:
    return SimpleNamespace(path=path, routes=[]) if mount else SimpleNamespace(path=path)


@pytest.mark.parametrize(
    ("scope", "root", "expected"),
    [
        ({"route": _route("/items/{id}")}, "", "/items/{id}"),
        ({"route": _route("/u/{id}"), "root_path": "/api"}, "", "/api/u/{id}"),
        ({"route": _route("/u/{id}"), "root_path": "/proxy/api"}, "/proxy", "/api/u/{id}"),
        ({"route": _route("/static", mount=True), "root_path": "/static"}, "", "/static/{path}"),
        ({}, "", None),
        ({"route": object()}, "", None),
    ],
)
def test_starlette_route_uses_templates_and_mount_prefixes(
    scope: dict[str, Any], root: str, expected: str | None
) -> None:
    """The template comes from ``scope["route"]``, prefixed by mounts, never the raw path."""
    assert _http.starlette_route(scope, root) == expected


def test_call_resolver_turns_failures_into_no_route() -> None:
    """A resolver that raises means "no route", never an error in the request."""

    def broken(scope: Any) -> str:
        raise RuntimeError("boom")

    assert _http.call_resolver(broken, {}) is None
    assert _http.call_resolver(lambda s: s["r"], {"r": "/x"}) == "/x"


def test_options_build_applies_changes_and_rejects_unknown_names() -> None:
    """Keywords become HttpOptions fields; sequences are frozen; typos raise ConfigError."""
    options = HttpOptions.build(None, {"excluded_paths": ["/a", "/b*"], "access_log": False})
    assert options.excluded_paths == ("/a", "/b*")
    assert options.access_log is False
    again = HttpOptions.build(options, {"traceresponse": True})
    assert again.excluded_paths == ("/a", "/b*")
    assert again.traceresponse
    with pytest.raises(ConfigError, match="acess_log"):
        HttpOptions.build(None, {"acess_log": False})


def test_default_options_serve_metrics_and_the_four_probes() -> None:
    """By default /metrics and /livez /readyz /startupz /healthz are served."""
    options = HttpOptions()
    assert options.metrics_path == "/metrics"
    assert set(options.probe_paths) == {"/livez", "/readyz", "/startupz", "/healthz"}


def test_suppressed_context_has_an_unsampled_parent_and_the_flag() -> None:
    """Excluded requests run under a non-sampled parent with instrumentation suppressed."""
    ctx = _http.suppressed_context()
    assert get_value(_SUPPRESS_INSTRUMENTATION_KEY, ctx) is True
    span_context = trace.get_current_span(ctx).get_span_context()
    assert span_context.is_valid
    assert not span_context.trace_flags.sampled


def test_not_allowed_answers_405_with_allow() -> None:
    """Built-in endpoints answer other methods with 405 and an Allow header."""
    status, headers, _ = _http.not_allowed()
    assert status == 405
    assert ("allow", "GET, HEAD") in headers


def test_django_route_middleware_publishes_the_resolved_route() -> None:
    """process_view puts ``/`` + the resolver's route where the WSGI (META) or ASGI (scope)
    middleware reads it; an unresolved request publishes nothing."""
    from unified_obs.django import RouteMiddleware

    middleware = RouteMiddleware(lambda request: "response")
    wsgi_request = SimpleNamespace(resolver_match=SimpleNamespace(route="items/<int:pk>"), META={})
    asgi_request = SimpleNamespace(resolver_match=SimpleNamespace(route="/ws"), scope={}, META={})
    unresolved = SimpleNamespace(resolver_match=None, META={})
    for request in (wsgi_request, asgi_request, unresolved):
        assert middleware(request) == "response"
        middleware.process_view(request, None, (), {})
    assert wsgi_request.META == {_http.ROUTE_KEY: "/items/<int:pk>"}
    assert asgi_request.scope == {_http.ROUTE_KEY: "/ws"}
    assert asgi_request.META == {}
    assert unresolved.META == {}


def test_django_route_middleware_is_async_under_asgi() -> None:
    """With an async get_response the middleware is itself a coroutine function."""
    import asyncio

    from asgiref.sync import iscoroutinefunction

    from unified_obs.django import RouteMiddleware

    async def get_response(request: Any) -> str:
        return "async response"

    middleware = RouteMiddleware(get_response)
    assert iscoroutinefunction(middleware)
    assert asyncio.run(middleware(SimpleNamespace())) == "async response"


def test_starlette_route_templates_are_read_once_per_route() -> None:
    """A route object (unhashable, as Starlette's are) is inspected once: later requests
    reuse its template, and a new route object is inspected afresh."""
    from starlette.routing import Route

    async def endpoint(request: Any) -> None:
        return None

    route = Route("/orders/{order_id:int}", endpoint)
    with pytest.raises(TypeError):
        hash(route)
    first = _http.starlette_route({"route": route}, "")
    route.path_format = "/changed"  # a cached route is not inspected again
    again = _http.starlette_route({"route": route}, "")
    other = Route("/orders/{order_id:int}/lines", endpoint)
    assert (first, again) == ("/orders/{order_id}", "/orders/{order_id}")
    assert _http.starlette_route({"route": other}, "") == "/orders/{order_id}/lines"
