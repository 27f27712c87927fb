"""Stdlib records reach the JSON lines as plain text: uvicorn's ``color_message`` extra is
dropped and ANSI escape sequences are stripped from the message templates routed through
the bridge (the arguments are data: kept, and escaped by the renderer)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.served import environment, serve
from unified_obs.logs._stdlib_bridge import plain_text
from unified_obs.testing import capture

APP = """
import unified_obs as obs
from unified_obs.asgi import ObservabilityMiddleware

obs.setup(service_name="plain", handle_signals=False)


async def hello(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hi"})


app = ObservabilityMiddleware(hello)
"""


@pytest.mark.slow
def test_real_uvicorn_startup_lines_have_no_colour_copy(tmp_path: Path) -> None:
    """A real uvicorn's own "Started server process" line, read from its stdout, is one
    JSON object with the plain message and no ``color_message`` or escape sequence."""
    (tmp_path / "plain_app.py").write_text(APP)
    env = environment(None, tmp_path, OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none")
    env.update(OTEL_LOGS_EXPORTER="none", UNIFIED_OBS_LOG_FORMAT="json", FORCE_COLOR="1")
    with serve("uvicorn", "plain_app:app", cwd=tmp_path, env=env) as served:
        served.stop()
        lines = served.json_lines()
        raw = served.text()
    started = [line for line in lines if str(line.get("event", "")).startswith("Started server")]
    assert len(started) == 1, raw[-2000:]
    assert started[0]["logger"] == "uvicorn.error"
    assert "color_message" not in started[0]
    assert "\x1b" not in raw
    assert "\\u001b" not in raw


@pytest.mark.parametrize(
    ("message", "plain"),
    [
        ("\x1b[32mINFO\x1b[0m:     ready", "INFO:     ready"),
        (
            "Uvicorn running on \x1b[1mhttp://127.0.0.1:8000\x1b[0m",
            "Uvicorn running on http://127.0.0.1:8000",
        ),
        ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ text", "link text"),
        ("\x1b[2K\x1b[1;31mred\x1b[m", "red"),
        ("no escapes at all", "no escapes at all"),
    ],
)
def test_plain_text_strips_ansi_sequences(message: str, plain: str) -> None:
    """Colour (SGR), cursor (CSI) and hyperlink (OSC) sequences are removed, text kept."""
    assert plain_text(message) == plain


def test_stdlib_record_loses_colours_and_color_message() -> None:
    """A library logging a coloured message with a ``color_message`` extra produces a
    record with the plain message, the other extras kept and no ``color_message``."""
    with capture(log_stdlib=True) as cap:
        logging.getLogger("somelib").warning(
            "\x1b[33m%s\x1b[0m done",
            "job",
            extra={"color_message": "\x1b[1mjob\x1b[0m done", "job_id": 7},
        )
        record = next(r for r in cap.logs if r.get("logger") == "somelib")
    assert record["event"] == "job done"
    assert record["job_id"] == 7
    assert "color_message" not in record


def test_arguments_keep_their_escapes() -> None:
    """Only the template a library wrote loses its colours: an argument (data, perhaps a
    hostile request value) is kept exactly, so nothing a user sent is silently altered."""
    with capture(log_stdlib=True) as cap:
        logging.getLogger("somelib").warning("\x1b[1mgot\x1b[0m %s", "\x1b[2Jvalue")
        record = next(r for r in cap.logs if r.get("logger") == "somelib")
    assert record["event"] == "got \x1b[2Jvalue"
