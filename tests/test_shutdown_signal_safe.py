"""``shutdown()`` called from the application's own signal handler, in real processes.

A signal handler runs between two bytecodes of whatever the main thread was doing, so
the interrupted code may hold the log sink's lock (a line half written to a slow
stdout) or be the shutdown sequence itself (``atexit``).  Shutting down from the
handler must neither deadlock nor wait past its deadline in either case.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from unified_obs.lifecycle import in_signal_handler

EXIT_LIMIT = 10.0  # seconds; a deadlocked process never exits, a healthy one in < 2

WRITER = """
import os, signal
import unified_obs as obs

obs.setup(
    environ={}, service_name="sig", traces_exporter="none", logs_exporter="none",
    metrics_exporter="none", shutdown_timeout=1.0,
)
log = obs.get_logger("app")

def on_term(signum, frame):  # what services with their own SIGTERM handler do
    result = obs.shutdown()
    os.write(2, f"returned {dict(sorted(result.outcomes.items()))}\\n".encode())
    os._exit(0)  # not sys.exit: SystemExit raised inside a gc callback is swallowed

signal.signal(signal.SIGTERM, on_term)
os.write(2, b"ready\\n")
padding = "x" * 2000
while True:
    log.info("working", padding=padding)
"""

AT_EXIT = """
import os, signal, sys, threading
import unified_obs as obs

tel = obs.setup(
    environ={}, service_name="sig", traces_exporter="none", logs_exporter="none",
    metrics_exporter="none", shutdown_timeout=3.0,
)
handled = threading.Event()

def on_term(signum, frame):
    result = obs.shutdown()
    os.write(2, f"returned {dict(sorted(result.outcomes.items()))}\\n".encode())
    handled.set()

def slow_hook():  # keeps the atexit shutdown running until the signal was handled
    os.write(2, b"in-hook\\n")
    handled.wait(5.0)

signal.signal(signal.SIGTERM, on_term)
tel.on_shutdown(slow_hook)
os.write(2, b"ready\\n")
"""  # the script ends here: atexit runs the shutdown sequence


@contextmanager
def _child(tmp_path: Path, source: str) -> Iterator[subprocess.Popen[bytes]]:
    script = tmp_path / "app.py"
    script.write_text(source)
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline() == b"ready\n"
        yield proc
    finally:
        proc.kill()
        proc.wait(EXIT_LIMIT)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _main_thread_writing(pid: int) -> bool:
    """Whether the process's main thread is blocked writing to a full pipe."""
    try:
        return "pipe_write" in Path(f"/proc/{pid}/task/{pid}/wchan").read_text()
    except OSError:
        return False


def _drain(stream: object) -> threading.Thread:
    def read() -> None:
        while os.read(stream.fileno(), 65536):  # type: ignore[attr-defined]
            pass

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def _exit_and_stderr(proc: subprocess.Popen[bytes]) -> tuple[int | None, str]:
    """The exit status (``None``: still running after ``EXIT_LIMIT``) and stderr."""
    try:
        status: int | None = proc.wait(EXIT_LIMIT)
    except subprocess.TimeoutExpired:
        return None, ""
    assert proc.stderr is not None
    return status, proc.stderr.read().decode()


@pytest.mark.skipif(not Path("/proc/self/wchan").exists(), reason="needs Linux /proc")
def test_shutdown_from_a_handler_interrupting_a_blocked_log_write(tmp_path: Path) -> None:
    """With stdout full (nobody reading), the main thread blocks inside a log write with
    the sink's lock held; SIGTERM runs the app's handler there, which calls shutdown():
    it returns every signal ``ok`` and the process exits 0 once stdout drains."""
    for _ in range(3):
        with _child(tmp_path, WRITER) as proc:
            for _poll in range(5000):  # bounded: a 2 kB line fills a 64 kB pipe at once
                if _main_thread_writing(proc.pid):
                    break
                threading.Event().wait(0.001)
            assert _main_thread_writing(proc.pid)
            proc.send_signal(signal.SIGTERM)
            _drain(proc.stdout)
            status, errors = _exit_and_stderr(proc)
        assert status == 0, "deadlocked: the process never exited"
        assert "returned {'metrics': 'ok', 'traces': 'ok'}" in errors, errors


def test_shutdown_from_a_handler_while_logs_are_read(tmp_path: Path) -> None:
    """With stdout read as fast as it comes (a plain pipe), SIGTERM lands anywhere in the
    logging loop; shutdown() from the handler returns and the process exits 0, every
    time of seven."""
    for _ in range(7):
        with _child(tmp_path, WRITER) as proc:
            _drain(proc.stdout)
            proc.send_signal(signal.SIGTERM)
            status, errors = _exit_and_stderr(proc)
        assert status == 0, "deadlocked: the process never exited"
        assert "returned {'metrics': 'ok', 'traces': 'ok'}" in errors, errors


def test_shutdown_from_a_handler_while_atexit_runs_the_sequence(tmp_path: Path) -> None:
    """The script ends, ``atexit`` runs the shutdown sequence (a slow hook), SIGTERM
    arrives: the handler's shutdown() returns ``pending`` at once instead of waiting
    for the sequence it interrupted, which then finishes and the process exits 0."""
    with _child(tmp_path, AT_EXIT) as proc:
        assert proc.stderr is not None
        assert proc.stderr.readline() == b"in-hook\n"
        proc.send_signal(signal.SIGTERM)
        status, errors = _exit_and_stderr(proc)
    assert status == 0, "deadlocked: the process never exited"
    assert "returned {'shutdown': 'pending'}" in errors, errors


def test_in_signal_handler_is_true_only_inside_one() -> None:
    """``in_signal_handler()`` sees a Python handler (plain, nested call) on the stack,
    and is False in ordinary code."""
    seen: list[bool] = []

    def nested() -> None:
        seen.append(in_signal_handler())

    def handler(signum: int, frame: object) -> None:
        nested()

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert seen == [True]
    assert in_signal_handler() is False
