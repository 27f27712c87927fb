"""A stand-alone admin HTTP server: probes and ``/metrics`` on their own port.

For workers without an HTTP app, gRPC services, or to keep probes answering while the
application's own workers are saturated.  Threaded (one daemon thread per request),
bound to 127.0.0.1 unless told otherwise, GET and HEAD only, no request logging.

    admin = tel.serve_admin(port=9464)      # /livez /readyz /startupz /healthz /metrics
    admin.close()
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from . import endpoints
from .errors import ConfigError
from .health import HealthRegistry, default_registry

__all__ = ["AdminServer", "Answer", "close_all", "serve", "serve_routes"]

Answer = Callable[[str, Message, bool], "endpoints.Response | None"]
"""(path without query, request headers, HEAD?) -> the response, or ``None`` for 404."""

_servers: Final[set[AdminServer]] = set()
_lock: Final = threading.Lock()


class AdminServer:
    """A running admin server; :meth:`close` stops it (idempotent)."""

    def __init__(self, server: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._server, self._thread = server, thread
        self.host: Final[str] = str(server.server_address[0])
        self.port: Final[int] = int(server.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port`` of the server."""
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        """Stop serving and release the port."""
        with _lock:
            if self not in _servers:
                return
            _servers.discard(self)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)


def serve(
    port: int = 0,
    host: str = "127.0.0.1",
    *,
    registry: HealthRegistry | None = None,
    details: bool = False,
) -> AdminServer:
    """Start serving probes and metrics on ``host:port`` (0: any free port) in a thread.

    Raises ``ConfigError`` when the address cannot be bound (port taken, unknown host).
    """
    return serve_routes(_probes_and_metrics(registry or default_registry(), details), port, host)


def serve_routes(
    answer: Answer, port: int = 0, host: str = "127.0.0.1", *, name: str = "admin"
) -> AdminServer:
    """Serve GET and HEAD with ``answer`` (``None``: 404) on ``host:port`` in a thread: the
    admin server's machinery for other small listeners (the debug endpoints).

    Raises ``ConfigError`` when the address cannot be bound (port taken, unknown host).
    """
    try:
        server = ThreadingHTTPServer((host, port), _handler(answer))
    except OSError as exc:
        raise ConfigError("port", port, f"a free port on {host} ({exc.strerror})") from None
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        daemon=True,
        name=f"unified_obs-{name}-{server.server_address[1]}",
    )
    thread.start()
    admin = AdminServer(server, thread)
    with _lock:
        _servers.add(admin)
    return admin


def close_all() -> None:
    """Close every admin server still running (``testing.reset``)."""
    with _lock:
        servers = list(_servers)
    for server in servers:
        server.close()


def _probes_and_metrics(registry: HealthRegistry, details: bool) -> Answer:
    """The admin routes: ``/metrics`` and the probe paths."""

    def answer(path: str, headers: Message, head: bool) -> endpoints.Response | None:
        if path == "/metrics":
            return _metrics(headers.get("accept"), headers.get("accept-encoding"))
        return endpoints.probe(registry, path, details=details, head=head)

    return answer


def _handler(answer: Answer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10.0  # a client that stalls cannot hold a thread for long
        wbufsize = 65536  # headers and body leave in one write (no Nagle/delayed-ACK stall)
        server_version = "unified_obs"
        sys_version = ""

        def do_GET(self) -> None:
            self._answer(head=False)

        def do_HEAD(self) -> None:
            self._answer(head=True)

        def _answer(self, *, head: bool) -> None:
            path = self.path.split("?", 1)[0]
            status, headers, body = answer(path, self.headers, head) or _NOT_FOUND
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Probes and scrapes are not worth an access log line."""

    return Handler


_NOT_FOUND: Final[endpoints.Response] = (
    404,
    [("content-type", "text/plain"), ("content-length", "10")],
    b"not found\n",
)


def _metrics(accept: str | None, accept_encoding: str | None) -> endpoints.Response:
    """``metrics.render``, or 503 when rendering cannot even start."""
    try:
        from . import metrics  # on first scrape: probes alone do not load prometheus_client

        status, headers, body = metrics.render(accept, accept_encoding)
    except Exception:  # metrics not available: say so without leaking why
        body = b"metrics unavailable\n"
        return 503, [("content-type", "text/plain"), ("content-length", str(len(body)))], body
    if not any(name.lower() == "content-length" for name, _ in headers):
        headers = [*headers, ("content-length", str(len(body)))]
    return status, headers, body
