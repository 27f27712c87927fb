"""A real OTLP/HTTP receiver for tests: decodes protobuf with ``opentelemetry-proto``.

Binds 127.0.0.1 on a port the OS picks.  Also provides the two broken
collectors the shutdown tests need: a closed port and a port that accepts
connections and never answers (:func:`dead_collector` names either by kind), and
an OTLP/gRPC trace collector around a servicer of the test's own.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import grpc
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import (
    TraceServiceServicer,
    add_TraceServiceServicer_to_server,
)

from tests.served import serving

_ROUTES: dict[str, tuple[type[Message], type[Message]]] = {
    "/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse),
    "/v1/logs": (ExportLogsServiceRequest, ExportLogsServiceResponse),
    "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse),
}


def _value(any_value: Any) -> Any:
    """A Python value from an OTLP ``AnyValue``."""
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind) if kind else None


def attributes(key_values: Any) -> dict[str, Any]:
    """OTLP ``KeyValue`` list as a dict."""
    return {kv.key: _value(kv.value) for kv in key_values}


@dataclass
class Received:
    """Everything the receiver decoded, by signal; thread-safe to read."""

    requests: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in _ROUTES})
    headers: list[dict[str, str]] = field(default_factory=list)
    peers: list[tuple[str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, Span) for every span received."""
        with self.lock:
            return [
                (attributes(rs.resource.attributes), span)
                for request in self.requests["/v1/traces"]
                for rs in request.resource_spans
                for ss in rs.scope_spans
                for span in ss.spans
            ]

    def logs(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, LogRecord) for every log record received."""
        with self.lock:
            return [
                (attributes(rl.resource.attributes), record)
                for request in self.requests["/v1/logs"]
                for rl in request.resource_logs
                for sl in rl.scope_logs
                for record in sl.log_records
            ]

    def metrics(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, Metric) for every metric received, in arrival order."""
        with self.lock:
            return [
                (attributes(rm.resource.attributes), metric)
                for request in self.requests["/v1/metrics"]
                for rm in request.resource_metrics
                for sm in rm.scope_metrics
                for metric in sm.metrics
            ]

    def wait_for(self, predicate: Callable[[Received], bool], timeout: float = 10.0) -> bool:
        """Block until ``predicate(self)`` holds or ``timeout`` passes; returns the result."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self.arrived:
                self.arrived.wait(min(left, 0.05))
        return True


def _handler(received: Received) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real collector does

        def do_POST(self) -> None:
            route = _ROUTES.get(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if route is None:
                self.send_response(404)
                self.end_headers()
                return
            request = route[0]()
            request.ParseFromString(body)
            with received.arrived:
                received.requests[self.path].append(request)
                received.headers.append(dict(self.headers))
                received.peers.append(self.client_address)
                received.arrived.notify_all()
            payload = route[1]().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def otlp_receiver() -> Iterator[tuple[str, Received]]:
    """Run the receiver; yields (base endpoint URL, Received)."""
    received = Received()
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), _handler(received))) as url:
        yield url, received


def closed_port() -> int:
    """A port on 127.0.0.1 that was bound and released: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def blackhole() -> Iterator[int]:
    """A port that accepts connections and never answers; yields the port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(1)
        for conn in accepted:
            conn.close()
        listener.close()


@contextmanager
def dead_collector(kind: Literal["closed", "blackhole"]) -> Iterator[str]:
    """The endpoint URL of a collector that refuses connections (``closed``) or accepts
    them and never answers (``blackhole``)."""
    if kind == "closed":
        yield f"http://127.0.0.1:{closed_port()}"
    else:
        with blackhole() as port:
            yield f"http://127.0.0.1:{port}"


@contextmanager
def grpc_trace_collector(servicer: TraceServiceServicer) -> Iterator[str]:
    """Serve ``servicer`` as an OTLP/gRPC trace collector (4 worker threads) on a port
    the OS picks; yields its endpoint URL and stops it, without grace, at the end."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add_TraceServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop(0)
