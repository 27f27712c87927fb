"""``examples/grpc_service.py`` runs on a fresh interpreter with no backend."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.served import json_lines

_ROOT = Path(__file__).resolve().parents[1]


def test_grpc_example_serves_calls_health_metrics_and_shuts_down() -> None:
    """The example exits 0; its call log lines carry the server span's trace id (the same as
    the handler's own line); health says SERVING; /metrics has both duration histograms; the
    shutdown sequence stops the server through its hook."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "UNIFIED_OBS_"))}
    done = subprocess.run(
        [sys.executable, str(_ROOT / "examples" / "grpc_service.py")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=_ROOT,
        env=environ,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    lines = json_lines(done.stdout)
    calls = [line for line in lines if line.get("event") == "grpc.server.call"]
    assert len(calls) == 5
    assert [c["status"] for c in calls].count("NOT_FOUND") == 1
    greeting = next(line for line in lines if line.get("event") == "greeting")
    assert greeting["rpc.method"] == "demo.Greeter/SayHello"
    assert greeting["trace_id"] == calls[0]["trace_id"]
    assert "grpc health: SERVING" in done.stdout
    assert "rpc_server_call_duration_seconds_count" in done.stdout
    assert "rpc_client_call_duration_seconds_count" in done.stdout
    assert "'hook:grpc-server': 'ok'" in done.stderr
