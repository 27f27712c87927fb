"""SIGTERM/SIGINT in real processes: readiness flips at once, the drain delay holds, the
previous handler runs afterwards, hooks and flush run once, a second signal exits at once."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from unified_obs.lifecycle._os_signals import REPEAT_AFTER

SCRIPT = """
import signal, sys, time
import unified_obs as obs

mode, delay = sys.argv[1], float(sys.argv[2])
if mode == "chained":
    def app_handler(signum, frame):
        print(f"app-handler {time.monotonic():.4f}", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, app_handler)
tel = obs.setup(
    environ={}, service_name="sig", traces_exporter="none", logs_exporter="none",
    metrics_exporter="none", log_level="error", drain_delay=delay, drain_timeout=2.0,
    shutdown_timeout=1.0,
)
tel.on_shutdown(lambda: print(f"hook {time.monotonic():.4f}", flush=True))
tel.health.mark_started()
admin = tel.serve_admin()
print(f"ready {admin.port}", flush=True)
while True:
    time.sleep(0.02)
"""


@contextmanager
def _process(
    tmp_path: Path, mode: str, delay: float
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), mode, str(delay)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ready "), line + (proc.stderr.read() if proc.stderr else "")
        yield proc, int(line.split()[1])
    finally:
        proc.kill()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _status(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def _until_not_ready(port: int, limit: float = 2.0) -> float:
    """Seconds until /readyz answers 503 (polling every few ms)."""
    start = time.monotonic()
    while _status(port, "/readyz") != 503:
        assert time.monotonic() - start < limit, "readiness never flipped"
        time.sleep(0.002)
    return time.monotonic() - start


def _events(output: str) -> dict[str, float]:
    return {
        line.split()[0]: float(line.split()[1])
        for line in output.splitlines()
        if line.startswith(("hook ", "app-handler "))
    }


def test_plain_script_sigterm(tmp_path: Path) -> None:
    """Default SIGTERM action: 503 at once, live during the delay, hooks run, status 143."""
    with _process(tmp_path, "plain", 0.5) as (proc, port):
        assert _status(port, "/readyz") == 200
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert _until_not_ready(port) < 0.1
        assert _status(port, "/livez") == 200  # still serving during the drain delay
        out, err = proc.communicate(timeout=10)
        exited = time.monotonic() - sent
    assert proc.returncode == -signal.SIGTERM, err  # killed by SIGTERM: shell status 143
    events = _events(out)
    assert events["hook"] - sent >= 0.5  # hooks ran after the drain delay ...
    assert 0.5 <= exited < 0.5 + 2.0 + 1.0 + 1.0  # ... and exit fits delay + drain + flush


def test_previous_handler_runs_after_the_delay(tmp_path: Path) -> None:
    """The application's own handler is chained, not replaced: it runs after drain_delay."""
    with _process(tmp_path, "chained", 0.4) as (proc, port):
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert _until_not_ready(port) < 0.1
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    events = _events(out)
    assert events["app-handler"] - sent >= 0.4
    assert events["hook"] >= events["app-handler"]  # atexit ran the sequence once, after


def test_sigint_raises_keyboard_interrupt_after_the_delay(tmp_path: Path) -> None:
    """SIGINT in a plain script: KeyboardInterrupt after the delay; hooks still run."""
    with _process(tmp_path, "plain", 0.2) as (proc, port):
        proc.send_signal(signal.SIGINT)
        assert _until_not_ready(port) < 0.1
        out, err = proc.communicate(timeout=10)
    assert "KeyboardInterrupt" in err
    assert "hook" in _events(out)


def test_second_sigterm_exits_promptly(tmp_path: Path) -> None:
    """During a long drain delay a second SIGTERM ends the process at once (status 143)."""
    with _process(tmp_path, "plain", 20.0) as (proc, port):
        first = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _until_not_ready(port)
        time.sleep(max(first + REPEAT_AFTER + 0.05 - time.monotonic(), 0.0))
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(5)
        assert time.monotonic() - sent < 1.0
    assert proc.returncode == 128 + signal.SIGTERM


def test_repeated_signal_at_once_is_one_event(tmp_path: Path) -> None:
    """The same SIGTERM twice in a row (process group + a forwarding master) still drains."""
    with _process(tmp_path, "plain", 0.3) as (proc, port):
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        assert _until_not_ready(port) < 0.1
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGTERM, err
    assert _events(out)["hook"] - sent >= 0.3
