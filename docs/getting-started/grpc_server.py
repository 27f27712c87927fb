# A gRPC service with traces, metrics, logs, grpc.health.v1 and an admin port for probes.
#
# Run:   pip install './unified_obs[grpc]'    (grpcio and grpcio-health-checking)
#        OTEL_TRACES_EXPORTER=console python grpc_server.py
#        (gRPC on PORT, default 50051; /metrics and probes on ADMIN_PORT, default 9464)
# Try:   curl localhost:9464/metrics       (rpc_server_call_duration_seconds ...)
#        curl localhost:9464/readyz
# The method takes and returns raw bytes, so no generated code is needed here: call it
# with grpc.insecure_channel("localhost:50051").unary_unary("/demo.Greeter/SayHello").
import os
from concurrent import futures
from typing import Any

import grpc

import unified_obs as obs
from unified_obs.grpc import add_health_servicer, register_server, server_interceptor

tel = obs.setup(service_name="greeter", service_version="1.0.0")
log = obs.get_logger(__name__)


def say_hello(request: bytes, context: Any) -> bytes:
    log.info("greeting", name=request.decode())  # carries the call's trace_id and span_id
    return b"hello " + request


server = grpc.server(futures.ThreadPoolExecutor(8), interceptors=[server_interceptor()])
greeter = {"SayHello": grpc.unary_unary_rpc_method_handler(say_hello)}
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("demo.Greeter", greeter),))
add_health_servicer(server, tel, services=["demo.Greeter"])  # grpc.health.v1 from tel.health
server.add_insecure_port(f"127.0.0.1:{os.environ.get('PORT', '50051')}")
server.start()
register_server(server, tel)  # on SIGTERM: NOT_SERVING, drain in-flight calls, stop
# loopback only by default; in a Kubernetes pod add host="0.0.0.0" so probes reach it
admin = tel.serve_admin(port=int(os.environ.get("ADMIN_PORT", "9464")))
log.info("greeter.started", admin=admin.url)
server.wait_for_termination()
