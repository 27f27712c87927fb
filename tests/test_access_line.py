"""The straight access line writes, byte for byte, the line the ordinary logger call
writes over the same pipeline, and hands every case it does not cover to that call."""

from __future__ import annotations

import json
from typing import Any, Final

import pytest
from opentelemetry import trace
from structlog.typing import EventDict, WrappedLogger

import unified_obs as obs
from unified_obs import context, testing
from unified_obs._http import access_line
from unified_obs._http.access_line import EVENT, LOGGER, AccessLine
from unified_obs.logs import processors

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
_REQUEST: Final = ("GET", "/items/42", "/items/{id}", 200, 1.234, 17, "127.0.0.1")


@pytest.fixture(autouse=True)
def _still_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every line carries the same timestamp, so two lines can be compared as bytes."""
    monkeypatch.setattr(processors, "_time_ns", lambda: 1_700_000_000_123_456_000)


def _setup(**options: Any) -> obs.Telemetry:
    return obs.setup(environ={}, **{**_SETUP, **options})


def _both(capsys: pytest.CaptureFixture[str], *request: Any) -> tuple[str, str]:
    """The line the straight path writes for ``request``, and the ordinary call's line."""
    line = AccessLine(obs.get_logger(LOGGER))
    method, path, route, status, duration_ms, size, client = request
    capsys.readouterr()
    line(*request)
    straight = capsys.readouterr().out
    obs.get_logger(LOGGER).info(
        EVENT, method=method, path=path, route=route, status=status,
        duration_ms=duration_ms, bytes=size, client=client,
    )  # fmt: skip
    ordinary = capsys.readouterr().out
    assert straight.count("\n") == ordinary.count("\n") == 1
    return straight, ordinary


def _straight_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the lines the straight path renders itself (not through the logger)."""
    calls: list[int] = []
    original = access_line._Plan.passes

    def counting(plan: Any, bound: Any) -> bool:
        calls.append(1)
        return original(plan, bound)

    monkeypatch.setattr(access_line._Plan, "passes", counting)
    return calls


@pytest.mark.parametrize(
    ("bound", "request_fields"),
    [
        pytest.param({}, _REQUEST, id="nothing-bound"),
        pytest.param({"request_id": "ab12"}, _REQUEST, id="request-id"),
        pytest.param({"request_id": "ab12", "tenant": 7}, _REQUEST, id="two-bound"),
        pytest.param({"token": "s3cret"}, _REQUEST, id="sensitive-bound"),
        pytest.param({"user": {"password": "x"}}, _REQUEST, id="dict-bound"),
        pytest.param({"level": "odd", "method": "X"}, _REQUEST, id="clashing-bound"),
        pytest.param({"service.name": "other"}, _REQUEST, id="static-clash"),
        pytest.param(
            {}, ("GET", "/a\nb\x1b[31m\u2028é", None, 404, 0.0, 0, None), id="hostile-path"
        ),
        pytest.param({}, ("BREW", "/", None, 418, 10.5, 2, "::1"), id="odd-method"),
    ],
)
def test_the_straight_line_is_the_ordinary_line(
    capsys: pytest.CaptureFixture[str], bound: dict[str, Any], request_fields: tuple[Any, ...]
) -> None:
    """Bound fields (plain, sensitive, nested, clashing), hostile paths and null routes
    give the same bytes as the ordinary logger call, inside a span."""
    _setup()
    with trace.get_tracer("t").start_as_current_span("request"), context.bound(**bound):
        straight, ordinary = _both(capsys, *request_fields)
    assert straight == ordinary
    record = json.loads(straight)
    assert (record["event"], record["logger"], record["service.name"]) == (EVENT, LOGGER, "svc")
    assert len(record["trace_id"]) == 32
    assert "s3cret" not in straight
    assert '"password":"x"' not in straight


def test_plain_requests_take_the_straight_path(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under the default JSON chain a request with a bound request id is rendered by the
    straight path; without a span the line has no trace ids, like the ordinary one."""
    calls = _straight_calls(monkeypatch)
    _setup()
    with context.bound(request_id="ab12"):
        straight, ordinary = _both(capsys, *_REQUEST)
    assert calls
    assert straight == ordinary
    assert "trace_id" not in json.loads(straight)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"redact_keys": ["client"]}, id="a-field-of-the-line-is-sensitive"),
        pytest.param({"log_format": "console"}, id="console"),
        pytest.param({"log_level": "warning"}, id="info-filtered-out"),
    ],
)
def test_other_chains_get_the_ordinary_call(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, options: dict[str, Any]
) -> None:
    """A sensitive line field, the console renderer or a level above info: the ordinary
    call writes (or drops) the line, and both paths agree."""
    calls = _straight_calls(monkeypatch)
    _setup(**options)
    with context.bound(request_id="ab12"):
        straight, ordinary = (
            _both(capsys, *_REQUEST) if options.get("log_level") is None else ("", "")
        )
        if options.get("log_level"):
            AccessLine(obs.get_logger(LOGGER))(*_REQUEST)
            assert capsys.readouterr().out == ""
    assert not calls
    assert straight == ordinary
    if "redact_keys" in options:
        assert json.loads(straight)["client"] == "[REDACTED]"


def test_a_capture_sees_the_line_and_the_straight_path_resumes_after(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A processor inserted into the live chain (``testing.capture``) sends the line
    through the ordinary call, so the capture sees it; once removed, the straight path
    writes again."""
    calls = _straight_calls(monkeypatch)
    telemetry = _setup()
    line = AccessLine(obs.get_logger(LOGGER))
    seen: list[EventDict] = []

    def keep(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        seen.append(dict(event_dict))
        return event_dict

    telemetry.log_pipeline.insert_before_render(keep)
    line(*_REQUEST)
    assert [(r["event"], r["route"]) for r in seen] == [(EVENT, "/items/{id}")]
    assert not calls
    telemetry.log_pipeline.remove(keep)
    with context.bound(request_id="ab12"):
        line(*_REQUEST)
    assert len(calls) == 1
    assert len(seen) == 1
    assert capsys.readouterr().out.count("\n") == 2


def test_a_new_pipeline_is_followed_and_none_is_quiet(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Before ``setup()`` the line is dropped without error; after a reset and a new
    ``setup()`` the same AccessLine writes with the new service fields."""
    line = AccessLine(obs.get_logger(LOGGER))
    line(*_REQUEST)
    assert capsys.readouterr().out == ""
    _setup()
    line(*_REQUEST)
    assert json.loads(capsys.readouterr().out)["service.name"] == "svc"
    testing.reset()
    _setup(service_name="next")
    line(*_REQUEST)
    assert json.loads(capsys.readouterr().out)["service.name"] == "next"
