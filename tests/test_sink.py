"""Log lines reach a pipe promptly although they are not flushed one by one."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

import orjson
import pytest
import structlog

import unified_obs as obs
from unified_obs._ratelimit import RateLimitFilter

_CHILD = textwrap.dedent(
    """
    import sys
    import unified_obs as obs

    obs.setup(service_name="sink-test", environ={}, log_format="json")
    obs.get_logger("t").info("buffered", n=1)
    sys.stdin.read()  # stay alive without exiting (exit would flush anyway)
    """
)


def test_buffered_line_reaches_a_pipe_while_the_process_keeps_running() -> None:
    """The background flusher delivers an info line to a pipe without process exit."""
    with subprocess.Popen(
        [sys.executable, "-c", _CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": ""},  # a block-buffered stdout, as in production
    ) as child:
        try:
            assert child.stdout is not None
            line = child.stdout.readline()  # blocks until the flusher writes the line
        finally:
            child.kill()
    record = orjson.loads(line)
    assert record["event"] == "buffered"
    assert record["n"] == 1


def test_bad_format_arguments_never_raise_into_the_caller(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A %-format mismatch in a log call is dropped (and reported once), never raised."""
    obs.setup(service_name="safe", environ={}, log_format="json")
    log = obs.get_logger("t")
    log.info("two %s %s", 1)  # TypeError inside structlog's interpolation
    log.bind(k=1).error("%d", "not a number")
    structlog.get_logger().warning("%s %s", "only one")
    log.info("still.works")
    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    events = [line["event"] for line in lines]
    assert events[-1] == "still.works"
    assert any("log call failed" in event for event in events)


def test_console_renderer_has_no_colours_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    """log_format="console" writing to a pipe or file contains no ANSI escape codes."""
    obs.setup(service_name="plain", environ={}, log_format="console")
    obs.get_logger("t").warning("look", n=1)
    out = capsys.readouterr().out
    assert "look" in out
    assert "\x1b[" not in out


def test_sdk_warning_storm_is_rate_limited(capsys: pytest.CaptureFixture[str]) -> None:
    """1,000 "Queue full" warnings from the SDK become one line; other loggers are untouched."""
    obs.setup(service_name="storm", environ={}, log_format="json")
    sdk = logging.getLogger("opentelemetry.sdk._shared_internal")
    for _ in range(1000):
        sdk.warning("Queue full, dropping %s.", "Span")
    app = logging.getLogger("app")
    for i in range(3):
        app.warning("app warning %d", i)
    events = [orjson.loads(line)["event"] for line in capsys.readouterr().out.splitlines()]
    assert events.count("Queue full, dropping Span.") == 1
    assert [e for e in events if e.startswith("app warning")] == [
        "app warning 0",
        "app warning 1",
        "app warning 2",
    ]


def test_rate_limit_reports_how_many_were_held_back() -> None:
    """Within the interval repeats are held back; the next one after it carries the count."""
    now = [0.0]
    limiter = RateLimitFilter("opentelemetry", interval=10.0, clock=lambda: now[0])

    def record(arg: str) -> logging.LogRecord:
        return logging.LogRecord("opentelemetry.x", logging.WARNING, "", 0, "m %s", (arg,), None)

    assert limiter.filter(record("first"))
    assert [limiter.filter(record(str(i))) for i in range(5)] == [False] * 5
    now[0] = 10.5
    after = record("after")
    assert limiter.filter(after)
    assert after.__dict__["suppressed"] == 5
    other = logging.LogRecord("app", logging.WARNING, "", 0, "m %s", ("x",), None)
    assert all(limiter.filter(other) for _ in range(3))
