"""WSGI middleware: one SERVER span, RED metrics and one access log line per request.

    from unified_obs.wsgi import ObservabilityMiddleware
    app.wsgi_app = ObservabilityMiddleware(app.wsgi_app)        # Flask
    application = ObservabilityMiddleware(get_wsgi_application())  # Django

Each request runs in its own copy of the context (span current, request id bound), and
the response iterable is wrapped so the request ends when the body has been sent (or the
server closes it early), however late the server calls ``close()``.  Responses made with
``wsgi.file_wrapper`` are returned as they are, so the server can still use ``sendfile``.
WSGI has no lifespan: the middleware marks startup complete when it is built.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import Any, Final

from . import _http, context, endpoints, health, lifecycle, metrics
from ._http import HttpOptions, internal_error, origin, w3c
from ._http.exchange import Exchange, Recorder, trace_headers
from .resilience import faults
from .resilience._fault_http import faulty_wsgi

_FAULTS: Final = faults.injector()  # one object for the process: its plan says if armed
_W3C_KEYS: Final = tuple((name, "HTTP_" + name.upper()) for name in sorted(w3c.NAMES))

__all__ = ["HttpOptions", "ObservabilityMiddleware", "StartResponse", "WSGIApp", "WSGIEnvironment"]

WSGIEnvironment = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]]


class ObservabilityMiddleware:
    """Instrument any WSGI app; ``options`` / keywords are :class:`HttpOptions` fields."""

    def __init__(self, app: WSGIApp, options: HttpOptions | None = None, /, **changes: Any):
        self.app = app
        self.options = HttpOptions.build(options, changes)
        self._recorder = Recorder(self.options, "unified_obs.wsgi")
        self._special = self._recorder.special
        self._prefixes = self._recorder.excluded_prefixes
        header = self.options.request_id_header
        self._id_key = "HTTP_" + header.upper().replace("-", "_") if header else None
        self._id_header = header.lower() if header else None
        _publish_flask_routes(app)
        try:
            health.default_registry().mark_started()
        except Exception:
            internal_error("wsgi startup")

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Serve the built-in endpoints, pass excluded paths through, instrument the rest."""
        path = environ.get("PATH_INFO", "")
        special = self._special.get(path)
        if special is not None or (self._prefixes and path.startswith(self._prefixes)):
            return self._special_request(special, environ, start_response)
        try:
            exchange = _WsgiExchange(self, environ, start_response)
        except Exception:  # an environ we cannot read: serve it uninstrumented, never fail it
            internal_error("wsgi request start")
            return self.app(environ, start_response)
        if _FAULTS.plan.armed:  # fault injection, only in a process armed for it
            return exchange.run(faulty_wsgi(self.app, exchange.mark_fault))
        return exchange.run(self.app)

    def _special_request(
        self, special: str | None, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        endpoint: WSGIApp | None = None
        if special == "metrics":
            endpoint = self._metrics
        elif special is not None and special != _http.EXCLUDED:
            endpoint = self._probe
        if endpoint is None:
            ctx = contextvars.copy_context()
            ctx.run(context.attach_otel_context, _http.suppressed_context())
            return ctx.run(self.app, environ, start_response)
        if self.options.instrument_endpoints:
            return _WsgiExchange(self, environ, start_response, route=path_of(environ)).run(
                endpoint
            )
        return endpoint(environ, start_response)

    def _metrics(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _respond(start_response, environ, *_http.not_allowed())
        try:
            answer = metrics.render(environ.get("HTTP_ACCEPT"), environ.get("HTTP_ACCEPT_ENCODING"))
        except Exception:
            answer = _http.unavailable("metrics endpoint")
        return _respond(start_response, environ, *answer)

    def _probe(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        method = environ.get("REQUEST_METHOD")
        if method not in ("GET", "HEAD"):
            return _respond(start_response, environ, *_http.not_allowed())
        kind = self._special[environ.get("PATH_INFO", "")]
        try:
            report = health.default_registry().check_sync(kind)  # type: ignore[arg-type]
            answer = endpoints.render(
                report, details=self.options.health_details, head=method == "HEAD"
            )
        except Exception:
            answer = _http.unavailable("probe endpoint")
        return _respond(start_response, environ, *answer)


def _publish_flask_routes(app: Any) -> None:
    """For a Flask app (or its ``wsgi_app``), copy the matched ``url_rule`` into the
    environ before each view runs, so the route is known even when the view raises."""
    flask_app = app if hasattr(app, "url_map") else getattr(app, "__self__", None)
    if not (hasattr(flask_app, "url_map") and hasattr(flask_app, "before_request")):
        return
    import flask

    def publish_route() -> None:
        rule = flask.request.url_rule
        if rule is not None:
            flask.request.environ[_http.ROUTE_KEY] = rule.rule

    flask_app.before_request(publish_route)  # type: ignore[union-attr]


def path_of(environ: Mapping[str, Any]) -> str:
    """The request path as the client sent it (``SCRIPT_NAME`` + ``PATH_INFO``)."""
    path: str = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    return path


def _respond(
    start_response: StartResponse,
    environ: WSGIEnvironment,
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
) -> list[bytes]:
    start_response(f"{status} {HTTPStatus(status).phrase}", list(headers))
    return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]


class _WsgiExchange(Exchange):
    """One WSGI request: wraps ``start_response`` and the response iterable."""

    __slots__ = ("_route_checked", "_start_response", "ctx", "environ", "middleware")

    def __init__(
        self,
        middleware: ObservabilityMiddleware,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        route: str | None = None,
    ) -> None:
        scheme = environ.get("wsgi.url_scheme", "http")
        if "HTTP_X_FORWARDED_PROTO" in environ or "HTTP_FORWARDED" in environ:
            scheme = origin.client_scheme(
                scheme, environ.get("HTTP_FORWARDED"), environ.get("HTTP_X_FORWARDED_PROTO")
            )
        super().__init__(
            middleware._recorder, environ.get("REQUEST_METHOD", "GET"), scheme, path_of(environ)
        )
        self.middleware = middleware
        self.environ = environ
        self._start_response = start_response
        self._route_checked = False
        self.route = route
        self.client = environ.get("REMOTE_ADDR")
        key = middleware._id_key
        value = environ.get(key) if key is not None else None
        if isinstance(value, str) and _http.valid_request_id(value):
            self.request_id = value
        else:
            self.request_id = _http.new_request_id()
        carrier = None
        if "HTTP_TRACEPARENT" in environ or "HTTP_BAGGAGE" in environ:
            carrier = self._carrier()
        self.begin(self._attributes(), carrier)

    def _attributes(self) -> dict[str, Any]:
        environ = self.environ
        protocol = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
        self.protocol = protocol[5:] if protocol[:5] == "HTTP/" else protocol
        attributes: dict[str, Any] = {
            "http.request.method": self.method,
            "url.scheme": self.scheme,
            "url.path": self.path,
            "network.protocol.version": self.protocol,
        }
        address, port = _server(environ, self.scheme)
        if address is not None:
            attributes["server.address"] = address
        if port is not None:
            attributes["server.port"] = port
        query = environ.get("QUERY_STRING")
        if query:
            attributes["url.query"] = self.recorder.redactor.query(query)
        if self.client:
            attributes["client.address"] = self.client
        agent = environ.get("HTTP_USER_AGENT")
        if agent is not None:
            attributes["user_agent.original"] = agent
        if self.recorder.request_headers:
            attributes.update(self.recorder.capture(self.recorder.request_headers, _pairs(environ)))
        return attributes

    def _carrier(self) -> dict[str, str] | None:
        """The W3C propagation headers that came with the request (the server joined
        repeated lines with ``,``), read per the specifications (``_http.w3c``)."""
        environ = self.environ
        lines = [(name, environ.get(key)) for name, key in _W3C_KEYS]
        found = [(name, value) for name, value in lines if isinstance(value, str)]
        if not found:
            return None
        return dict(found) if w3c.plain(found) else w3c.carrier(found)

    def run(self, app: WSGIApp) -> Iterable[bytes]:
        """Call ``app`` in a private copy of the context; wrap what it returns."""
        self.ctx = contextvars.copy_context()
        return self.ctx.run(self._call, app)

    def _call(self, app: WSGIApp) -> Iterable[bytes]:
        context.attach_otel_context(self.context)  # inside the request's own context copy
        context.bind_shared({"request_id": self.request_id})
        lifecycle.inflight.enter()
        try:
            iterable = app(self.environ, self.start_response)
        except BaseException as exc:
            self.end(exc)
            raise
        file_wrapper = self.environ.get("wsgi.file_wrapper")
        if isinstance(file_wrapper, type) and isinstance(iterable, file_wrapper):
            return self._wrap_file(iterable)
        return _Body(iterable, self)

    def _wrap_file(self, iterable: Iterable[bytes]) -> Iterable[bytes]:
        """A ``wsgi.file_wrapper`` response is returned as it is (``sendfile``), with its
        ``close`` wrapped to end the request."""
        try:
            iterable.close = _closer(self, getattr(iterable, "close", None))  # type: ignore[attr-defined]
            return iterable
        except (AttributeError, TypeError):
            return _Body(iterable, self)

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
        """The server's ``start_response``, noting the status and adding response headers."""
        try:
            self.status = int(status[:3])
            if self.route is None:
                self.route = self.find_route()
                self._route_checked = True
            extra = []
            name = self.middleware._id_header
            if name is not None:
                for key, _ in headers:
                    if key.lower() == name:
                        break
                else:  # the app set no request id header of its own
                    extra.append((name, self.request_id))
            recorder = self.recorder
            if recorder.wants_response_headers:
                self.span.set_attributes(recorder.capture(recorder.response_headers, headers))
            if recorder.wants_trace_headers:
                for header, value in trace_headers(self, recorder.options):
                    extra.append((header.decode(), value.decode()))
            headers = [*headers, *extra]
        except Exception:
            internal_error("wsgi start_response")
        return self._start_response(status, headers, exc_info)

    def find_route(self) -> str | None:
        """User resolver, then ``environ[ROUTE_KEY]`` (Django), then Flask's ``url_rule``."""
        environ = self.environ
        resolver = self.recorder.options.route_resolver
        if resolver is not None:
            found = _http.call_resolver(resolver, environ)
            if found:
                return found
        found = environ.get(_http.ROUTE_KEY)
        if found:
            return str(found)
        request = environ.get("werkzeug.request")  # no getattr on None: it raises inside
        rule = getattr(request, "url_rule", None) if request is not None else None
        return getattr(rule, "rule", None) if rule is not None else None

    def end(self, exc: BaseException | None = None) -> None:
        """Finish the request once (inside its context) and leave the in-flight count."""
        if self.done:
            if exc is not None:
                self.fail(exc)
            return
        if self.route is None and not self._route_checked:
            self.route = self.find_route()
        if exc is not None:
            self.fail(exc)
        else:
            self.finish()
        lifecycle.inflight.exit()


def _server(environ: Mapping[str, Any], scheme: str) -> tuple[str | None, int | None]:
    """``server.address``/``server.port`` from the headers, else ``SERVER_NAME``/``PORT``."""
    host = environ.get("HTTP_HOST")
    forwarded, forwarded_host = environ.get("HTTP_FORWARDED"), environ.get("HTTP_X_FORWARDED_HOST")
    if host is not None or forwarded is not None or forwarded_host is not None:
        return origin.server(host, scheme, forwarded, forwarded_host)
    port = environ.get("SERVER_PORT")
    return environ.get("SERVER_NAME"), int(port) if port and str(port).isdigit() else None


def _pairs(environ: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            yield key[5:].replace("_", "-"), value
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            yield key.replace("_", "-"), value


def _closer(exchange: _WsgiExchange, close: Callable[[], object] | None) -> Callable[[], None]:
    def close_then_end() -> None:
        try:
            if close is not None:
                close()
        finally:
            exchange.ctx.run(exchange.end)

    return close_then_end


class _Body:
    """The app's response iterable; the request ends when it is exhausted or closed."""

    __slots__ = ("_exchange", "_iterable", "_iterator", "_plain")

    def __init__(self, iterable: Iterable[bytes], exchange: _WsgiExchange) -> None:
        self._iterable = iterable
        self._exchange = exchange
        self._iterator: Iterator[bytes] | None = None
        self._plain = type(iterable) in (list, tuple)  # no app code runs while iterating

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks() if self._plain else self

    def _chunks(self) -> Iterator[bytes]:
        """A list or tuple body: a generator ends without raising ``StopIteration`` in
        Python, and no app code runs, so no context switch per chunk."""
        exchange = self._exchange
        for chunk in self._iterable:
            exchange.bytes_out += len(chunk)
            yield chunk
        exchange.ctx.run(exchange.end)

    def __next__(self) -> bytes:
        exchange = self._exchange
        if self._iterator is None:
            self._iterator = iter(self._iterable)
        try:
            chunk = exchange.ctx.run(next, self._iterator)
        except StopIteration:
            exchange.ctx.run(exchange.end)
            raise
        except BaseException as exc:
            exchange.ctx.run(exchange.end, exc)
            raise
        exchange.bytes_out += len(chunk)
        return chunk

    def close(self) -> None:
        """Close the app's iterable, then end the request if the body was cut short."""
        exchange = self._exchange
        try:
            close = None if self._plain else getattr(self._iterable, "close", None)
            if close is not None:
                exchange.ctx.run(close)
        finally:
            if not exchange.done:
                exchange.disconnected = True
                exchange.ctx.run(exchange.end)
