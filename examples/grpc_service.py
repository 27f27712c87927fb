"""A gRPC service and client with traces, metrics, logs, health and graceful shutdown.

Run: ``python examples/grpc_service.py`` (needs ``pip install 'unified-obs[grpc]'``; no
collector or other backend).  It serves ``demo.Greeter`` on 127.0.0.1 with our server
interceptor, the standard ``grpc.health.v1`` service and an admin port for ``/metrics``
and probes; a client with our client interceptor makes one call of each shape and one
that fails; then the graceful shutdown drains and stops the server.  ``--serve`` keeps
it running until Ctrl-C.

No generated code: the methods are generic handlers on raw bytes.
"""

from __future__ import annotations

import sys
import threading
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

import unified_obs as obs
from unified_obs import lifecycle
from unified_obs.grpc import (
    add_health_servicer,
    client_interceptor,
    register_server,
    server_interceptor,
)

tel = obs.setup(
    service_name="greeter",
    service_version="1.0.0",
    environment="dev",
    traces_exporter="none",  # spans are still made; "console" prints them as JSON
    log_format="json",
    drain_timeout=5.0,
)
log = obs.get_logger("greeter")


def say_hello(request: bytes, context: Any) -> bytes:
    """Unary: greet one name (``NOT_FOUND`` for nobody)."""
    name = request.decode()
    if not name:
        context.abort(grpc.StatusCode.NOT_FOUND, "nobody to greet")
    log.info("greeting", name=name)  # carries rpc.method and the call's trace id
    return f"hello {name}".encode()


def say_hellos(request: bytes, context: Any) -> Iterator[bytes]:
    """Unary request, streamed response."""
    for index in range(3):
        yield f"hello #{index} {request.decode()}".encode()


def count_names(requests: Iterator[bytes], context: Any) -> bytes:
    """Streamed requests, unary response."""
    return str(sum(1 for _ in requests)).encode()


def echo_names(requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
    """Streamed requests, streamed response."""
    for request in requests:
        yield b"hi " + request


def build_server() -> tuple[grpc.Server, int]:
    """The greeter with our interceptor and the health service, started on a free port."""
    server = grpc.server(futures.ThreadPoolExecutor(8), interceptors=[server_interceptor()])
    methods = {
        "SayHello": grpc.unary_unary_rpc_method_handler(say_hello),
        "SayHellos": grpc.unary_stream_rpc_method_handler(say_hellos),
        "CountNames": grpc.stream_unary_rpc_method_handler(count_names),
        "EchoNames": grpc.stream_stream_rpc_method_handler(echo_names),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("demo.Greeter", methods),)
    )
    add_health_servicer(server, tel, services=["demo.Greeter"])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    register_server(server, tel, grace=5.0)  # stop(grace) in the shutdown sequence
    return server, port


def run_client(target: str) -> None:
    """One call of each shape, one failing call and a health check."""
    channel = grpc.intercept_channel(
        grpc.insecure_channel(target), client_interceptor(target=target)
    )
    with channel:
        print(channel.unary_unary("/demo.Greeter/SayHello")(b"ada", timeout=5))
        print(list(channel.unary_stream("/demo.Greeter/SayHellos")(b"bob", timeout=5)))
        print(channel.stream_unary("/demo.Greeter/CountNames")(iter([b"a", b"b"]), timeout=5))
        print(list(channel.stream_stream("/demo.Greeter/EchoNames")(iter([b"c"]), timeout=5)))
        try:
            channel.unary_unary("/demo.Greeter/SayHello")(b"", timeout=5)
        except grpc.RpcError as error:
            print("failed as expected:", error.code(), error.details())
        health = health_pb2_grpc.HealthStub(channel)
        answer = health.Check(health_pb2.HealthCheckRequest(service="demo.Greeter"), timeout=5)
        print("grpc health:", health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))


def show_admin(url: str) -> None:
    """Print the readiness probe and the gRPC lines of ``/metrics``."""
    with urllib.request.urlopen(f"{url}/readyz") as response:
        print("readyz:", response.status)
    with urllib.request.urlopen(f"{url}/metrics") as response:
        text = response.read().decode()
    print("metrics:")
    for line in text.splitlines():
        if line.startswith("rpc_") and "_count" in line:
            print("  " + line)


def main() -> None:
    """Serve, call, show the signals, shut down gracefully."""
    _server, port = build_server()  # the shutdown hook holds it too
    admin = tel.serve_admin(port=0)
    log.info("greeter.started", target=f"127.0.0.1:{port}", admin=admin.url)
    if "--serve" in sys.argv:
        threading.Event().wait()
    run_client(f"127.0.0.1:{port}")
    show_admin(admin.url)
    result = lifecycle.run_shutdown_sequence()  # NOT_SERVING, drain, stop(grace), flush
    admin.close()
    print(f"shutdown: {dict(result.outcomes) if result else None}", file=sys.stderr)


if __name__ == "__main__":
    main()
