"""gRPC server and client interceptors (``grpc`` and ``grpc.aio``) and the standard health
service, from the ``[grpc]`` extra.

    from unified_obs.grpc import server_interceptor, add_health_servicer, register_server

    server = grpc.server(pool, interceptors=[server_interceptor()])
    add_health_servicer(server, tel)
    register_server(server, tel, grace=10.0)

Every call gets a span named by its fully-qualified method, a ``rpc.*.call.duration``
observation and (on the server, by default) one log line; status codes, details and
trailing metadata reach the other side unchanged.
"""

from __future__ import annotations

from ..errors import require_extra

require_extra("grpc", "grpc")
require_extra("grpc_health.v1.health_pb2", "grpc")  # grpcio-health-checking

from .aio_client import aio_client_interceptor  # noqa: E402
from .aio_server import aio_server_interceptor  # noqa: E402
from .client import client_interceptor  # noqa: E402
from .health import add_health_servicer, register_server  # noqa: E402
from .server import server_interceptor  # noqa: E402

__all__ = [
    "add_health_servicer",
    "aio_client_interceptor",
    "aio_server_interceptor",
    "client_interceptor",
    "register_server",
    "server_interceptor",
]
