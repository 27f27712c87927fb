"""The access line goes through the live processor chain like any other line: its
fields in a fixed order, bound fields and the service fields around them, redaction,
captures and a new pipeline all apply to it."""

from __future__ import annotations

import io
import json
from typing import Any, Final

import pytest
from structlog.typing import EventDict, WrappedLogger

import unified_obs as obs
from unified_obs import context, testing
from unified_obs._http.access_line import EVENT, LOGGER
from unified_obs.wsgi import ObservabilityMiddleware

_SETUP: Final[dict[str, Any]] = {
    "service_name": "svc",
    "service_version": "1.2.3",
    "log_format": "json",
    "traces_exporter": "none",
    "metrics_exporter": "none",
    "logs_exporter": "none",
    "handle_signals": False,
    "log_stdlib": False,
}
_FIELDS: Final = ("method", "path", "route", "status", "duration_ms", "bytes", "client")


def _setup(**options: Any) -> obs.Telemetry:
    return obs.setup(environ={}, **{**_SETUP, **options})


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("content-type", "text/plain")])
    return [b"hello"]


def _start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
    return lambda data: None


def _request(app: ObservabilityMiddleware, path: str = "/items/42", **extra: Any) -> None:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        **extra,
    }
    body = app(environ, _start_response)
    list(body)
    body.close()  # type: ignore[attr-defined]


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_the_line_has_its_fields_in_order_between_bound_and_service_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``timestamp``, ``level``, ``event``, the request's bound fields, the logger name,
    the request's fields, then the service fields and the span's ids."""
    _setup()
    app = ObservabilityMiddleware(_app, route_resolver=lambda environ: "/items/{id}")
    capsys.readouterr()
    _request(app, HTTP_X_REQUEST_ID="ab12")
    (line,) = _lines(capsys)
    assert list(line)[:5] == ["timestamp", "level", "event", "request_id", "logger"]
    assert list(line)[5:12] == list(_FIELDS)
    assert (line["level"], line["event"], line["logger"]) == ("info", EVENT, LOGGER)
    assert (line["request_id"], line["route"], line["status"], line["bytes"]) == (
        "ab12",
        "/items/{id}",
        200,
        5,
    )
    assert line["service.name"] == "svc"
    assert len(line["trace_id"]) == 32


def test_sensitive_fields_are_redacted_in_the_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A line field (``client``) or a bound field the redactor calls sensitive is written
    as ``[REDACTED]``."""
    _setup(redact_keys=["client"])
    app = ObservabilityMiddleware(_app)
    capsys.readouterr()
    with context.bound(token="s3cret", user={"password": "x"}):
        _request(app)
    (line,) = _lines(capsys)
    assert line["client"] == line["token"] == "[REDACTED]"
    assert line["user"] == {"password": "[REDACTED]"}


def test_hostile_paths_stay_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Control characters and line separators in the path are escaped."""
    _setup()
    app = ObservabilityMiddleware(_app)
    capsys.readouterr()
    _request(app, "/a\nb\x1b[31m\u2028é")
    (line,) = _lines(capsys)
    assert line["path"] == "/a\nb\x1b[31m\u2028é"


def test_a_capture_and_a_level_above_info_apply_to_the_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A processor inserted into the live chain sees the line; at ``warning`` a plain
    request writes none."""
    telemetry = _setup()
    app = ObservabilityMiddleware(_app)
    seen: list[EventDict] = []

    def keep(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        seen.append(dict(event_dict))
        return event_dict

    telemetry.log_pipeline.insert_before_render(keep)
    _request(app)
    telemetry.log_pipeline.remove(keep)
    assert [(r["event"], r["path"]) for r in seen] == [(EVENT, "/items/42")]
    testing.reset()
    _setup(log_level="warning")
    capsys.readouterr()
    _request(ObservabilityMiddleware(_app))
    assert capsys.readouterr().out == ""


def test_a_new_pipeline_is_followed(capsys: pytest.CaptureFixture[str]) -> None:
    """After a reset and a new ``setup()`` the same middleware writes with the new
    service fields."""
    _setup()
    app = ObservabilityMiddleware(_app)
    capsys.readouterr()
    _request(app)
    assert _lines(capsys)[0]["service.name"] == "svc"
    testing.reset()
    _setup(service_name="next")
    capsys.readouterr()
    _request(app)
    assert _lines(capsys)[0]["service.name"] == "next"
