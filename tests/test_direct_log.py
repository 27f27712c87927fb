"""The direct level methods of ``get_logger`` loggers write, byte for byte, the lines
structlog's bound logger writes over the same pipeline (timestamp aside)."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import pytest
import structlog
from opentelemetry import trace
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

import unified_obs as obs
from unified_obs import context, testing
from unified_obs.logs import _bound_logger

_SETUP: Final[dict[str, Any]] = {
    "service_name": "svc",
    "service_version": "1.2.3",
    "environment": "test",
    "log_format": "json",
    "traces_exporter": "none",
    "metrics_exporter": "none",
    "logs_exporter": "none",
    "handle_signals": False,
    "log_stdlib": False,
}
_DIRECT_METHODS: Final = (
    "debug",
    "info",
    "msg",
    "warning",
    "warn",
    "error",
    "err",
    "exception",
    "critical",
    "fatal",
)
_REF_METHOD: Final = {"err": "error"}  # structlog's FilteringBoundLogger has no ``err``
_TIMESTAMP: Final = re.compile(r'\{"timestamp":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z",(.*)')


@pytest.fixture(autouse=True)
def _fresh_failure_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no failed-log-call type reported yet (the set is process-wide)."""
    monkeypatch.setattr(_bound_logger, "_failures_reported", set())


def _setup(**options: Any) -> obs.Telemetry:
    return obs.setup(environ={}, **{**_SETUP, **options})


def _loggers(name: str = "t", **initial: Any) -> tuple[FilteringBoundLogger, FilteringBoundLogger]:
    """A ``get_logger`` logger whose direct methods are cached, and a structlog bound
    logger over the same chain and sink with the same fields."""
    return _warm(obs.get_logger(name, **initial))


def _warm(log: FilteringBoundLogger) -> tuple[FilteringBoundLogger, FilteringBoundLogger]:
    """``log`` with its direct methods cached, and a structlog reference for it."""
    # The first attribute lookup resolves the proxy (and is answered by structlog);
    # only then are the direct methods cached on it.
    log.is_enabled_for(logging.DEBUG)
    assert set(_DIRECT_METHODS) <= vars(log).keys()
    return log, log.bind()


def _call(logger: FilteringBoundLogger, method: str, *args: Any, **kw: Any) -> Any:
    return getattr(logger, method)(*args, **kw)


def _ref_call(ref: FilteringBoundLogger, method: str, *args: Any, **kw: Any) -> Any:
    return _call(ref, _REF_METHOD.get(method, method), *args, **kw)


def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Lines written to stdout since the last read."""
    out = capsys.readouterr().out
    assert out == "" or out.endswith("\n")
    return out.splitlines()


def _untimed(line: str) -> str:
    """``line`` without its leading timestamp field."""
    match = _TIMESTAMP.fullmatch(line)
    assert match is not None, line
    return "{" + match.group(1)


def _assert_same(direct: str, reference: str) -> dict[str, Any]:
    """The two lines are equal bytes and equal ordered fields, timestamp aside."""
    assert _untimed(direct) == _untimed(reference)
    parsed: dict[str, Any] = json.loads(direct)
    expected: dict[str, Any] = json.loads(reference)
    del parsed["timestamp"], expected["timestamp"]
    assert list(parsed.items()) == list(expected.items())
    return parsed


def _emit_both(
    capsys: pytest.CaptureFixture[str],
    log: FilteringBoundLogger,
    ref: FilteringBoundLogger,
    method: str,
    *args: Any,
    **kw: Any,
) -> dict[str, Any]:
    """Make the same call through the direct path and structlog; the one line each wrote,
    compared, parsed and without its timestamp."""
    capsys.readouterr()
    assert _call(log, method, *args, **kw) is None
    direct = _lines(capsys)
    _ref_call(ref, method, *args, **kw)
    reference = _lines(capsys)
    assert len(direct) == 1, direct
    assert len(reference) == 1, reference
    return _assert_same(direct[0], reference[0])


@contextmanager
def _inserted(telemetry: obs.Telemetry, processor: Processor) -> Iterator[None]:
    telemetry.log_pipeline.insert_before_render(processor)
    try:
        yield
    finally:
        telemetry.log_pipeline.remove(processor)


def _drop_marked(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    if event_dict.get("drop"):
        raise structlog.DropEvent
    return event_dict


def _broken(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    raise ValueError("broken processor")


def _fail() -> None:
    raise ValueError("boom")


@pytest.mark.parametrize(
    ("event", "args", "kw", "expected"),
    [
        pytest.param(
            "order.created",
            (),
            {"order_id": 42, "ok": True, "note": None, "items": [1, {"a": "b"}], "ratio": 0.5},
            {"event": "order.created", "order_id": 42, "items": [1, {"a": "b"}]},
            id="fields",
        ),
        pytest.param(
            "%s items for %d", ("ab", 3), {"k": 1}, {"event": "ab items for 3"}, id="percent"
        ),
        pytest.param("%(n)s items", ({"n": 5},), {}, {"event": "5 items"}, id="single-dict"),
        pytest.param("got %s", ({},), {}, {"event": "got {}"}, id="empty-dict-positional"),
        pytest.param(
            "%s and %s",
            ({"a": 1}, {"b": 2}),
            {},
            {"event": "{'a': 1} and {'b': 2}"},
            id="two-dicts-positional",
        ),
        pytest.param("100% done", (), {}, {"event": "100% done"}, id="percent-without-args"),
        pytest.param(
            "login",
            (),
            {"password": "hunter2", "user": "bob"},
            {"password": "[REDACTED]", "user": "bob"},
            id="redacted",
        ),
        pytest.param("event=%s", ("a\nb\x1b[31m",), {"k": "\u2028"}, {"k": "\u2028"}, id="hostile"),
    ],
)
def test_calls_write_the_same_line(
    capsys: pytest.CaptureFixture[str],
    event: str,
    args: tuple[Any, ...],
    kw: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    """Fields, ``%`` interpolation (one non-empty mapping is used as a dict), redaction and
    escaping give the same bytes through the direct path as through structlog."""
    _setup()
    log, ref = _loggers()
    line = _emit_both(capsys, log, ref, "info", event, *args, **kw)
    assert {key: line[key] for key in expected} == expected
    assert (line["level"], line["logger"], line["service.name"]) == ("info", "t", "svc")


@pytest.mark.parametrize(
    ("method", "level"),
    [
        ("debug", "debug"),
        ("info", "info"),
        ("msg", "info"),
        ("warning", "warning"),
        ("warn", "warning"),
        ("error", "error"),
        ("err", "error"),
        ("exception", "error"),
        ("critical", "critical"),
        ("fatal", "critical"),
    ],
)
def test_every_level_method_writes_the_same_line(
    capsys: pytest.CaptureFixture[str], method: str, level: str
) -> None:
    """Every level method and alias writes structlog's line with its canonical ``level``
    (``err`` is compared with structlog's ``error``); outside ``except`` no traceback."""
    _setup(log_level="debug")
    log, ref = _loggers()
    line = _emit_both(capsys, log, ref, method, "at %s", method, n=1)
    assert (line["level"], line["event"]) == (level, f"at {method}")
    assert "exception" not in line
    assert "exc_info" not in line


@pytest.mark.parametrize("method", ["debug", "info", "msg"])
def test_methods_below_the_configured_level_write_nothing(
    capsys: pytest.CaptureFixture[str], method: str
) -> None:
    """With ``log_level="warning"`` the lower direct methods are no-ops, as in structlog."""
    _setup(log_level="warning")
    log, ref = _loggers()
    capsys.readouterr()
    assert _call(log, method, "quiet %s", 1, k=1) is None
    assert _ref_call(ref, method, "quiet %s", 1, k=1) is None
    assert _lines(capsys) == []
    log.warning("loud")
    assert [json.loads(line)["event"] for line in _lines(capsys)] == ["loud"]


@pytest.mark.parametrize(("method", "kw"), [("exception", {}), ("error", {"exc_info": True})])
def test_exception_inside_except_writes_the_same_traceback(
    capsys: pytest.CaptureFixture[str], method: str, kw: dict[str, Any]
) -> None:
    """``exception()`` (and ``error(exc_info=True)``) inside ``except`` write structlog's
    line, with the same structured ``exception`` list."""
    _setup()
    log, ref = _loggers()
    try:
        _fail()
    except ValueError:
        line = _emit_both(capsys, log, ref, method, "failed %s", "x", order=1, **kw)
    assert (line["level"], line["event"], line["order"]) == ("error", "failed x", 1)
    (exception,) = line["exception"]
    assert (exception["exc_type"], exception["exc_value"]) == ("ValueError", "boom")
    assert [frame["name"] for frame in exception["frames"]][-1] == "_fail"
    assert "exc_info" not in line


@pytest.mark.parametrize("method", ["error", "err", "exception", "critical", "warning"])
def test_exc_info_instance_outside_except_writes_the_same_traceback(
    capsys: pytest.CaptureFixture[str], method: str
) -> None:
    """``exc_info=exc`` after the ``except`` block has ended renders that exception the
    same way in both paths."""
    _setup()
    log, ref = _loggers()
    try:
        _fail()
    except ValueError as caught:
        exc = caught
    line = _emit_both(capsys, log, ref, method, "failed", exc_info=exc)
    assert line["exception"][0]["exc_value"] == "boom"


def test_bound_request_fields_are_the_same(capsys: pytest.CaptureFixture[str]) -> None:
    """Fields of ``obs.bind``/``obs.bound``, the logger's own fields and the call's fields
    come out in the same order and with the same winners in both paths."""
    _setup()
    log, ref = _loggers("orders", tenant="acme")
    token = obs.bind(request_id="r1", user="ctx")
    try:
        with obs.bound(route="/orders", request_id="r2"):
            line = _emit_both(capsys, log, ref, "info", "placed", user="call", qty=2)
    finally:
        context.reset(token)
    expected = {"request_id": "r2", "route": "/orders", "user": "call", "tenant": "acme"}
    assert {key: line[key] for key in expected} == expected
    assert line["logger"] == "orders"
    line = _emit_both(capsys, log, ref, "warning", "unbound")
    assert "request_id" not in line


def test_lines_inside_a_span_carry_the_same_trace_ids(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Inside an active span both paths write the span's trace_id/span_id/trace_flags."""
    _setup()
    log, ref = _loggers()
    with trace.get_tracer("t").start_as_current_span("work") as span:
        line = _emit_both(capsys, log, ref, "info", "inside", a=1)
        error_line = _emit_both(capsys, log, ref, "error", "inside too")
        span_context = span.get_span_context()
    assert span_context.is_valid
    for emitted in (line, error_line):
        assert emitted["trace_id"] == format(span_context.trace_id, "032x")
        assert emitted["span_id"] == format(span_context.span_id, "016x")
        assert emitted["trace_flags"] == format(span_context.trace_flags, "02x")
    assert "trace_id" not in _emit_both(capsys, log, ref, "info", "outside")


@pytest.mark.parametrize("method", ["info", "error", "exception"])
def test_drop_event_from_an_inserted_processor_drops_the_direct_line(
    capsys: pytest.CaptureFixture[str], method: str
) -> None:
    """A processor added after the logger cached its methods (the chain is live) that
    raises ``DropEvent`` drops the direct line silently, as in structlog."""
    telemetry = _setup()
    log, ref = _loggers()
    with _inserted(telemetry, _drop_marked):
        capsys.readouterr()
        assert _call(log, method, "gone", drop=True) is None
        assert _ref_call(ref, method, "gone", drop=True) is None
        assert _lines(capsys) == []
        line = _emit_both(capsys, log, ref, method, "kept", drop=False)
    assert (line["event"], line["drop"]) == ("kept", False)


def test_failing_processor_is_swallowed_with_one_warning(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A processor raising ``ValueError``: direct calls return None, write nothing, and
    only one warning is logged on "unified_obs" for two such calls."""
    telemetry = _setup()
    log, _ = _loggers()
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="unified_obs"), _inserted(telemetry, _broken):
        assert log.info("first") is None
        assert log.error("second %s", 2) is None
    assert _lines(capsys) == []
    warnings = [record for record in caplog.records if record.name == "unified_obs"]
    assert len(warnings) == 1
    assert "broken processor" in warnings[0].getMessage()
    assert "ValueError" in warnings[0].getMessage()
    log.info("recovered")
    assert [json.loads(line)["event"] for line in _lines(capsys)] == ["recovered"]


def test_capture_sees_direct_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """``testing.capture()`` entered after the logger cached its methods records the
    direct-path event dicts, equal to structlog's."""
    _setup()
    log, ref = _loggers()
    with testing.capture() as cap:
        line = _emit_both(capsys, log, ref, "info", "captured", a=1)
        direct, reference = cap.logs
    assert (line["event"], line["a"]) == ("captured", 1)
    del direct["timestamp"], reference["timestamp"]
    assert list(direct.items()) == list(reference.items())
    assert direct["event"] == "captured"


@pytest.mark.parametrize("operation", ["new", "bind"])
def test_new_and_bind_leave_the_proxy_fields_alone(
    capsys: pytest.CaptureFixture[str], operation: str
) -> None:
    """``new()``/``bind()`` on a ``get_logger`` logger return a structlog logger with the
    logger name and leave the proxy's own fields (``logger`` ...) in its later lines."""
    _setup()
    log, ref = _loggers("t", tenant="acme")
    log.info("before")
    child: FilteringBoundLogger = getattr(log, operation)(x=1)
    child.info("child")
    before, child_line = (json.loads(line) for line in _lines(capsys))
    assert (child_line["logger"], child_line["x"]) == ("t", 1)
    after = _emit_both(capsys, log, ref, "info", "after")
    assert (after["logger"], after["tenant"]) == ("t", "acme")
    assert "x" not in after
    assert (before["logger"], before["tenant"]) == ("t", "acme")


def test_logger_made_before_setup_uses_the_direct_path(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A module-level logger created (and called) before ``setup()`` caches the direct
    methods after it and writes structlog's lines."""
    early = obs.get_logger("early", component="db")
    early.info("dropped")
    _setup()
    log, ref = _warm(early)
    line = _emit_both(capsys, log, ref, "info", "hello", n=1)
    assert (line["logger"], line["component"], line["n"]) == ("early", "db", 1)


class _FlushRecorder(io.StringIO):
    """A stdout that records, per flush, the flushing thread and what was written."""

    def __init__(self) -> None:
        super().__init__()
        self.flushes: list[tuple[int, str]] = []

    def flush(self) -> None:
        self.flushes.append((threading.get_ident(), self.getvalue()))


@pytest.mark.parametrize(
    ("method", "flushed"),
    [
        ("debug", False),
        ("info", False),
        ("msg", False),
        ("warning", False),
        ("warn", False),
        ("error", True),
        ("err", True),
        ("exception", True),
        ("critical", True),
        ("fatal", True),
    ],
)
def test_error_levels_flush_at_once(
    monkeypatch: pytest.MonkeyPatch, method: str, flushed: bool
) -> None:
    """Error and critical lines are flushed by the logging call itself, after the line is
    written, in both paths; lower levels leave the flush to the background flusher."""
    _setup(log_level="debug")
    log, ref = _loggers()
    stdout = _FlushRecorder()
    monkeypatch.setattr(sys, "stdout", stdout)
    for logger, name in ((log, method), (ref, _REF_METHOD.get(method, method))):
        stdout.flushes.clear()
        _call(logger, name, f"via {name}")
        mine = [text for thread, text in stdout.flushes if thread == threading.get_ident()]
        if flushed:
            assert mine, f"{name} did not flush"
            assert f'"event":"via {name}"' in mine[0]
            assert mine[0].endswith("\n")
        else:
            assert mine == []


def test_event_passed_twice_never_raises(capsys: pytest.CaptureFixture[str]) -> None:
    """Passing the event both positionally and as ``event=`` never raises into the caller
    and writes nothing, as through structlog."""
    _setup()
    log, ref = _loggers()
    capsys.readouterr()
    assert _call(ref, "info", "x", event="y") is None
    assert _lines(capsys) == []
    assert _call(log, "info", "x", event="y") is None
    assert _lines(capsys) == []


@pytest.mark.parametrize(
    ("args", "kw"),
    [
        pytest.param(
            (),
            {"k": 1},
            id="no-event",
        ),
    ],
)
def test_calls_structlog_rejects_write_nothing(
    capsys: pytest.CaptureFixture[str], args: tuple[Any, ...], kw: dict[str, Any]
) -> None:
    """A call structlog's bound logger rejects (and drops) writes nothing through the
    direct path either."""
    _setup()
    log, ref = _loggers()
    capsys.readouterr()
    assert ref.info(*args, **kw) is None
    assert _lines(capsys) == []
    assert log.info(*args, **kw) is None
    assert _lines(capsys) == []


def test_exception_overrides_an_exc_info_logger_field(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``exception()`` renders the current exception even on a logger created with an
    ``exc_info`` field, as structlog does."""
    _setup()
    log, ref = _loggers("t", exc_info=False)
    try:
        _fail()
    except ValueError:
        line = _emit_both(capsys, log, ref, "exception", "failed")
    assert line["exception"][0]["exc_value"] == "boom"


def test_a_method_name_field_is_written_not_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    """A ``method_name=`` field is written as an ordinary field by the direct path (structlog's
    bound logger drops the whole line: the name collides with a parameter of its own)."""
    _setup()
    log, _ = _loggers()
    capsys.readouterr()
    log.info("x", method_name="m")
    (line,) = _lines(capsys)
    fields = json.loads(line)
    assert fields["event"] == "x"
    assert fields["method_name"] == "m"
