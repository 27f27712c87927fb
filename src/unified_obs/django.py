"""Django route templates for the ASGI/WSGI middleware.

Wrap the application and add one line to ``MIDDLEWARE``::

    # wsgi.py
    from unified_obs.wsgi import ObservabilityMiddleware
    application = ObservabilityMiddleware(get_wsgi_application())

    # settings.py
    MIDDLEWARE = ["unified_obs.django.RouteMiddleware", *MIDDLEWARE]

``RouteMiddleware`` stores the resolver's route (``/items/<int:pk>``) where the
outer middleware finds it, so spans are named ``GET /items/<int:pk>`` and metrics are
labelled by the template.  Requests no URL pattern matched keep the shared
"unmatched" value.  It does nothing else and costs one attribute read per request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._http import ROUTE_KEY

__all__ = ["RouteMiddleware", "route_of"]


def route_of(request: Any) -> str | None:
    """The URL pattern Django resolved ``request`` to, as ``/path/<converter:name>``."""
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    if not isinstance(route, str) or not route:
        return None
    return route if route.startswith("/") else "/" + route


class RouteMiddleware:
    """Django middleware (sync and async capable) publishing the resolved route."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction  # Django's own dep

        if iscoroutinefunction(get_response):  # under ASGI: no thread hop for us
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        """Pass the request on unchanged (a coroutine under ASGI, awaited by Django)."""
        return self.get_response(request)

    def process_view(self, request: Any, view_func: Any, view_args: Any, view_kwargs: Any) -> None:
        """Called once the URL is resolved: put the route where the middleware reads it."""
        route = route_of(request)
        if route is not None:
            carrier = getattr(request, "scope", None)
            if carrier is None:
                carrier = request.META
            carrier[ROUTE_KEY] = route
