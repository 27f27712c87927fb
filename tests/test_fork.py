"""A forked worker exports over its own connection, never the parent's pooled one."""

from __future__ import annotations

import gc
import os

from opentelemetry import trace

import unified_obs as obs
from tests.otlp_receiver import otlp_receiver
from unified_obs._setup import active


def _export_one_span(name: str) -> bool:
    with trace.get_tracer("fork").start_as_current_span(name):
        pass
    tel = active()
    assert tel is not None
    assert tel.tracer_provider is not None
    return tel.tracer_provider.force_flush(5000)


def test_forked_child_does_not_reuse_parent_connection() -> None:
    """After fork the child's export opens a new connection and both processes still export."""
    with otlp_receiver() as (endpoint, received):
        obs.setup(service_name="fork-test", environ={}, otlp_endpoint=endpoint, log_stdlib=False)
        assert _export_one_span("parent-before")
        parent_peer = received.peers[-1]
        # earlier tests' garbage (gRPC channels among it) is freed here, not by a collection
        # in the child, where gRPC's core state does not survive fork (it segfaulted there)
        gc.collect()
        pid = os.fork()
        if pid == 0:  # child: report through the exit status only
            ok = _export_one_span("child")
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert _export_one_span("parent-after")
        names = [span.name for _, span in received.spans()]
        peers = list(received.peers)
    assert sorted(names) == ["child", "parent-after", "parent-before"]
    child_peer = peers[names.index("child")]
    assert child_peer != parent_peer
