"""Log lines reach a pipe promptly although they are not flushed one by one."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
from typing import Any

import orjson
import pytest
import structlog

import unified_obs as obs
from unified_obs.asgi import ObservabilityMiddleware
from unified_obs.logs import _stdout_sink
from unified_obs.logs._stdout_sink import LineSink
from unified_obs.logs._warning_filter import RateLimitFilter

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


class _Stdout:
    """A stdout that keeps each ``write`` call apart (one call: one system call, unbuffered)."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self.flushes = 0

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        self.flushes += 1


def _patched(monkeypatch: pytest.MonkeyPatch) -> _Stdout:
    """``sys.stdout`` replaced by a :class:`_Stdout` (in the test's body: pytest's own
    capture sets ``sys.stdout`` again between a fixture and the test)."""
    out = _Stdout()
    monkeypatch.setattr(sys, "stdout", out)
    return out


def _ok(scope: Any, receive: Any, send: Any) -> Any:
    async def app() -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app()


async def _noop_send(message: Any) -> None:
    return None


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def test_access_lines_of_one_loop_turn_leave_in_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests that end in the same loop turn are recorded at the next one, and their
    access lines reach stdout in a single write call, each a whole JSON line, in order."""
    stdout = _patched(monkeypatch)
    obs.setup(
        service_name="sink", environ={}, log_format="json", traces_exporter="none",
        metrics_exporter="none", logs_exporter="none", handle_signals=False,
    )  # fmt: skip
    app = ObservabilityMiddleware(_ok)
    paths = [f"/p{i}" for i in range(8)]

    async def main() -> None:
        scopes = [{"type": "http", "method": "GET", "path": p, "headers": []} for p in paths]
        await asyncio.gather(*(app(s, _receive, _noop_send) for s in scopes))
        await asyncio.sleep(0)  # the turn that records the requests (if it has not run)

    asyncio.run(main())
    access = [w for w in stdout.writes if '"http.request"' in w]
    assert len(access) == 1
    lines = [orjson.loads(line) for line in access[0].splitlines()]
    assert [line["path"] for line in lines] == paths
    assert len({line["request_id"] for line in lines}) == len(paths)


def test_lines_outside_a_batch_are_written_one_call_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """With nothing held (a WSGI thread, a script), every line is its own write at once."""
    stdout = _patched(monkeypatch)
    sink = LineSink()
    sink.info(b'{"n":1}')
    sink.info('{"n":2}')
    assert stdout.writes == ['{"n":1}\n', '{"n":2}\n']


def test_held_lines_wait_for_the_release_and_an_error_line_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Held lines are written together at the release; an error-level line first writes
    what is held, then itself, and flushes, so the order on the stream is kept."""
    stdout = _patched(monkeypatch)
    sink = LineSink()
    assert _stdout_sink.hold()
    assert not _stdout_sink.hold()  # held already: an inner batch must not release
    sink.info("a")
    sink.info("b")
    assert stdout.writes == []
    sink.error("boom")
    assert stdout.writes == ["a\nb\n", "boom\n"]
    assert stdout.flushes >= 1
    sink.info("c")
    _stdout_sink.release()
    assert stdout.writes == ["a\nb\n", "boom\n", "c\n"]
    sink.info("d")  # released: at once again
    assert stdout.writes[-1] == "d\n"


def test_closing_writes_what_is_held_and_drops_later_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """``close()`` (shutdown) loses no held line, and a line after it is dropped."""
    stdout = _patched(monkeypatch)
    sink = LineSink()
    _stdout_sink.hold()
    try:
        sink.info("kept")
        sink.close()
        sink.info("dropped")
    finally:
        _stdout_sink.release()
    assert stdout.writes == ["kept\n"]


def test_a_broken_stdout_at_release_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stdout that fails when the batch is written drops the lines; the caller (the
    event loop's batch) does not see the error."""

    class Broken:
        def write(self, text: str) -> int:
            raise OSError("broken pipe")

        def flush(self) -> None:
            raise OSError("broken pipe")

    monkeypatch.setattr(sys, "stdout", Broken())
    sink = LineSink()
    _stdout_sink.hold()
    sink.info("lost")
    _stdout_sink.release()
    sink.error("lost too")
