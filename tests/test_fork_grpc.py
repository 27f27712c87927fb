"""Fork with the OTLP/gRPC exporter (reliability plan T-13), in a real process.

The parent sets up unified_obs with the gRPC exporter and exports a span (its channel is
open and used), then forks four children, as a pre-loading server does; each child
exports a span of its own.  No child hangs (each is given 10 s), every span reaches the
gRPC collector in this test, and each child's spans carry their own
``service.instance.id``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as service
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as service_grpc

from tests.otlp_receiver import grpc_trace_collector

CHILDREN = 4

SCRIPT = """
import json, os, sys, time
import unified_obs as obs
from opentelemetry import trace
from unified_obs._setup import active

obs.setup(
    environ={}, service_name="fork-grpc", otlp_endpoint=sys.argv[1], otlp_protocol="grpc",
    traces_exporter="otlp", logs_exporter="none", metrics_exporter="none",
    handle_signals=False, otlp_timeout=3.0,
)

def export(name):
    with trace.get_tracer("fork").start_as_current_span(name):
        pass
    return active().tracer_provider.force_flush(5000)

assert export("parent-before")
children = []
for i in range(CHILDREN):
    pid = os.fork()
    if pid == 0:
        os._exit(0 if export(f"child-{i}") else 1)
    children.append(pid)
statuses = {}
deadline = time.monotonic() + 10  # bounded: a hung child is killed and reported
while children and time.monotonic() < deadline:
    for pid in list(children):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            statuses[pid] = os.waitstatus_to_exitcode(status)
            children.remove(pid)
    time.sleep(0.01)
for pid in children:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    statuses[pid] = "hung"
assert export("parent-after")
obs.shutdown(timeout=3)
print(json.dumps(sorted(map(str, statuses.values()))))
"""


class _Collector(service_grpc.TraceServiceServicer):
    """Records (span name, service.instance.id) of every span exported to it."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str]] = []

    def Export(self, request: Any, context: Any) -> Any:
        """Note the spans; accept them all."""
        for resource_spans in request.resource_spans:
            resource = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append((span.name, resource.get("service.instance.id", "")))
        return service.ExportTraceServiceResponse()


def test_forked_children_export_over_grpc_without_hanging(tmp_path: Path) -> None:
    """Four children forked after the parent's gRPC export: each exits 0 within 10 s,
    all six spans arrive, and every process has its own ``service.instance.id``."""
    script = tmp_path / "fork.py"
    script.write_text(SCRIPT.replace("CHILDREN", str(CHILDREN)))
    collector = _Collector()
    with grpc_trace_collector(collector) as endpoint:
        done = subprocess.run(
            [sys.executable, str(script), endpoint], capture_output=True, text=True, timeout=60
        )
        spans = list(collector.spans)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["0"] * CHILDREN
    names = sorted(name for name, _ in spans)
    assert names == sorted(["parent-after", "parent-before"] + [f"child-{i}" for i in range(4)])
    instances = {name: instance for name, instance in spans}
    assert instances["parent-before"] == instances["parent-after"]
    assert len(set(instances.values())) == 1 + CHILDREN
