"""The soak of ``benchmarks/soak.py`` for 30 seconds (reliability plan T-29, short form).

A real uvicorn server under 100 requests per second, exporting traces and logs to a
collector that is up 10 s, down 10 s: after the warm-up its threads and file
descriptors stay constant, its RSS grows by at most 8 MiB, the span queue stays within
its size, and no request fails.  The 5-minute run's figures are in docs/reliability.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_thirty_second_soak_stays_flat() -> None:
    """30 s of paced load against a flapping collector: every flatness verdict passes,
    the collector saw both its up and down windows, and no request failed."""
    argv = [sys.executable, "-m", "benchmarks.soak", "--minutes", "0.5", "--rps", "100"]
    argv += ["--every", "2", "--flap", "10", "--rss-slope", "1e9", "--rss-growth", "8"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["pass"] == dict.fromkeys(summary["pass"], True), done.stdout
    assert done.returncode == 0
    assert summary["failed_requests"] == 0
    assert summary["requests"] >= 0.8 * 100 * 30
    assert summary["collector_accepted"] > 0
    assert summary["collector_refused"] > 0
