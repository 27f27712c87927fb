"""The example service runs on a fresh interpreter and shows all three signals."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.served import json_lines

_ROOT = Path(__file__).resolve().parents[1]
_EXAMPLE = _ROOT / "examples" / "service.py"


def test_example_service_runs_and_prints_correlated_logs() -> None:
    """``python examples/service.py`` exits 0, prints JSON log lines carrying a trace id and
    shows metrics; no collector or other backend is needed."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "UNIFIED_OBS_"))}
    done = subprocess.run(
        [sys.executable, str(_EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=_ROOT,
        env=environ,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-2000:]
    with_trace = [
        line
        for line in json_lines(done.stdout)
        if re.fullmatch(r"[0-9a-f]{32}", str(line.get("trace_id", ""))) and "event" in line
    ]
    assert with_trace, done.stdout[-2000:]
    assert "metrics" in output.lower()
