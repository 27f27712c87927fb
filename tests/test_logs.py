"""The log pipeline: JSON lines on stdout with trace context, one physical line per record."""

from __future__ import annotations

import io
import json
import logging
import random
import re
import sys
import time
from typing import Any

import pytest
import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

import unified_obs as obs
from unified_obs.logs import processors as proc

# Strings a hostile client can put into a log line: line breaks of every kind, NUL,
# terminal escapes (CSI colour, OSC title, single-byte C1 CSI), DEL.
_HOSTILE = [
    "a\nb",
    "a\r\nb",
    "a\rb",
    "nul\x00byte",
    "\x1b[31mred\x1b[0m",
    "\x1b]0;title\x07",
    "c1\x9bcsi",
    "del\x7f",
    "nel\u0085x",
    "line\u2028sep",
    "para\u2029sep",
    "mixed\n\x1b[2J\u2028\r\x00end",
]
_RAW_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _setup(**options: Any) -> obs.Telemetry:
    settings: dict[str, Any] = {
        "service_name": "svc",
        "service_version": "1.2.3",
        "environment": "test",
        "log_format": "json",
        **options,
    }
    return obs.setup(environ={}, **settings)


def _raw_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Lines printed since the last call, without stray OTel SDK diagnostics."""
    out = capsys.readouterr().out
    assert out == "" or out.endswith("\n")
    return [line for line in out.split("\n")[:-1] if '"logger":"opentelemetry' not in line]


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _raw_lines(capsys)]


def test_json_line_carries_the_current_span_ids(capsys: pytest.CaptureFixture[str]) -> None:
    """Inside a span, trace_id/span_id/trace_flags are top-level and equal the span's."""
    _setup()
    log = obs.get_logger("orders")
    with trace.get_tracer("t").start_as_current_span("work") as span:
        log.info("order.created", order_id=42, a=1, b="x", c=True, d=None)
        ctx = span.get_span_context()
    log.info("outside")
    inside, outside = _lines(capsys)
    assert inside["trace_id"] == format(ctx.trace_id, "032x")
    assert inside["span_id"] == format(ctx.span_id, "016x")
    assert re.fullmatch(r"[0-9a-f]{32}", inside["trace_id"])
    assert inside["trace_flags"] == format(ctx.trace_flags, "02x")
    assert "trace_id" not in outside
    assert "span_id" not in outside


def test_json_line_has_the_standard_fields(capsys: pytest.CaptureFixture[str]) -> None:
    """Timestamp (ISO-8601 UTC), level, event, logger name and service fields, in order."""
    _setup()
    obs.get_logger("orders").warning("stock.low", sku="A1")
    (line,) = _lines(capsys)
    assert list(line)[:3] == ["timestamp", "level", "event"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", line["timestamp"])
    assert line["level"] == "warning"
    assert line["event"] == "stock.low"
    assert line["logger"] == "orders"
    assert line["sku"] == "A1"
    assert line["service.name"] == "svc"
    assert line["service.version"] == "1.2.3"
    assert line["deployment.environment.name"] == "test"


@pytest.mark.parametrize("text", _HOSTILE)
def test_hostile_input_stays_on_one_json_line(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Control characters in event, keys and values are escaped and round-trip exactly."""
    _setup()
    obs.get_logger("t").info(text, **{f"k{text}": text, "nested": {text: [text]}})
    (raw,) = _raw_lines(capsys)
    assert not _RAW_UNSAFE.search(raw)
    line = json.loads(raw)
    assert line["event"] == text
    assert line[f"k{text}"] == text
    assert line["nested"] == {text: [text]}


@pytest.mark.parametrize("text", _HOSTILE)
def test_hostile_input_through_stdlib_logging(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stdlib bridge renders hostile messages and extras on one line too."""
    _setup()
    logging.getLogger("lib").warning("got %s", text, extra={"field": text})
    (raw,) = _raw_lines(capsys)
    assert not _RAW_UNSAFE.search(raw)
    line = json.loads(raw)
    assert line["event"] == f"got {text}"
    assert line["field"] == text


@pytest.mark.parametrize("text", _HOSTILE)
def test_hostile_input_through_console_renderer(text: str) -> None:
    """The console renderer escapes every control character: one line, no raw escape."""
    renderer = proc.ConsoleRenderer(colors=False)
    event = {"timestamp": "t", "level": "info", "event": text, f"k{text}": text, "o": [text]}
    out = renderer(None, "info", event)
    assert not _RAW_UNSAFE.search(out)


def _random_hostile(rng: random.Random) -> str:
    alphabet = [*map(chr, range(0x00, 0x20)), "\x7f", *map(chr, range(0x80, 0xA0))]
    alphabet += ["\u2028", "\u2029", "\x1b[", "\r\n", "a", "é", "\U0001f600", '"', "\\", "{"]
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 24)))


def test_random_hostile_strings_through_both_renderers() -> None:
    """2,000 random mixes of control characters, escapes and separators: every JSON render
    is one line that round-trips, every console render has no raw control character."""
    rng = random.Random(20261124)
    json_renderer, console = proc.JSONRenderer(), proc.ConsoleRenderer(colors=False)
    for _ in range(2_000):
        text = _random_hostile(rng)
        event = {"event": text, text: text, "nested": [text, {text: text}]}
        line = json_renderer(None, "info", dict(event)).decode()
        assert not _RAW_UNSAFE.search(line), repr(text)
        assert json.loads(line) == event
        rendered = console(None, "info", {"timestamp": "t", "level": "info", **event})
        assert not _RAW_UNSAFE.search(rendered), repr(text)


def test_console_format_through_the_pipeline(capsys: pytest.CaptureFixture[str]) -> None:
    """log_format='console' writes one line per record; input cannot inject escapes."""
    _setup(log_format="console")
    obs.get_logger("t").info("evil\n\x1b[31mred", value="x\r\ny\x1b]0;t\x07")
    logging.getLogger("lib").warning("stdlib\n\x1b[31mred\u2028")
    out = "".join(  # lines of an earlier test's exporter still retrying are not ours
        line for line in capsys.readouterr().out.splitlines(True) if "opentelemetry" not in line
    )
    assert out.count("\n") == 2
    assert "\u2028" not in out
    assert "\x1b[31mred" not in out
    assert "\x1b]0;" not in out
    assert "\r" not in out
    assert "\\x1b[31mred" in out


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("tty", "is_json"), [(True, False), (False, True)])
def test_auto_format_follows_the_terminal(
    tty: bool, is_json: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """log_format='auto' renders for humans at a terminal and JSON otherwise."""
    stream = _Terminal() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    _setup(log_format="auto")
    obs.get_logger("t").info("hello", k=1)
    out = stream.getvalue()
    assert out.count("\n") == 1
    assert out.startswith("{") is is_json
    assert "hello" in out


def test_odd_values_never_raise(capsys: pytest.CaptureFixture[str]) -> None:
    """Cycles, huge ints, bytes and objects whose __str__ raises still give a JSON line."""

    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no")

    cycle: dict[str, Any] = {"token": "t"}
    cycle["self"] = cycle
    _setup()
    log = obs.get_logger("t")
    log.info("cycle", data=cycle)
    log.info("big", n=2**80, raw=b"\x00\xff")
    log.info("hostile", obj=Hostile())
    cyc, big, hostile = _lines(capsys)
    assert "REDACTED" in cyc["data"]
    assert big["n"] in (2**80, str(2**80))
    assert hostile["obj"] == "<unrepresentable Hostile>"


def test_sensitive_fields_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    """Sensitive keys are redacted in call fields, nested dicts, bound fields and extras."""
    _setup(redact_keys=["pin"])
    log = obs.get_logger("auth")
    with obs.bound(session_id="s-123"):
        log.info("login", user="ann", password="hunter2", pin="1234", req={"api_key": "k"})
    logging.getLogger("lib").info("call", extra={"authorization": "Bearer x"})
    line, stdlib_line = _lines(capsys)
    assert line["password"] == line["pin"] == line["session_id"] == "[REDACTED]"
    assert line["req"] == {"api_key": "[REDACTED]"}
    assert line["user"] == "ann"
    assert stdlib_line["authorization"] == "[REDACTED]"


def test_exception_is_structured_data_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """log.exception and stdlib exc_info give an 'exception' list with type, value, frames."""
    _setup()
    try:
        raise ZeroDivisionError("boom\nsecond line")
    except ZeroDivisionError:
        obs.get_logger("t").exception("failed", order_id=1)
        logging.getLogger("lib").exception("stdlib failed")
    raw = _raw_lines(capsys)
    assert len(raw) == 2
    for line in map(json.loads, raw):
        assert line["level"] == "error"
        (exc,) = line["exception"]
        assert exc["exc_type"] == "ZeroDivisionError"
        assert exc["exc_value"] == "boom\nsecond line"
        assert exc["frames"][-1]["name"] == "test_exception_is_structured_data_on_one_line"


def test_stdlib_records_get_the_same_fields(capsys: pytest.CaptureFixture[str]) -> None:
    """A stdlib record inside a span carries the same fields as a structlog one."""
    _setup()
    with trace.get_tracer("t").start_as_current_span("work") as span, obs.bound(tenant="acme"):
        logging.getLogger("library.db").info("query %s took %dms", "select", 12, extra={"rows": 3})
        trace_id = format(span.get_span_context().trace_id, "032x")
    (line,) = _lines(capsys)
    assert line["event"] == "query select took 12ms"
    assert line["level"] == "info"
    assert line["logger"] == "library.db"
    assert line["rows"] == 3
    assert line["tenant"] == "acme"
    assert line["trace_id"] == trace_id
    assert line["service.name"] == "svc"


def test_existing_root_handler_does_not_duplicate_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A handler configured before setup (basicConfig) is replaced: one line per record."""
    logging.getLogger().addHandler(logging.StreamHandler(sys.stdout))
    _setup()
    logging.getLogger("lib").warning("once")
    obs.get_logger("app").warning("twice?")
    lines = _lines(capsys)
    assert [line["event"] for line in lines] == ["once", "twice?"]


@pytest.mark.parametrize("name", ["uvicorn.error", "uvicorn.access", "gunicorn.error"])
def test_server_loggers_with_own_handlers_are_taken_over(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """uvicorn/gunicorn-style loggers with their own handler and propagate=False go through
    the pipeline, once."""
    server_logger = logging.getLogger(name)
    server_logger.addHandler(logging.StreamHandler(sys.stdout))
    server_logger.propagate = False
    _setup()
    server_logger.info("Started server process [%d]", 42)
    (line,) = _lines(capsys)
    assert line["logger"] == name
    assert line["event"] == "Started server process [42]"


@pytest.mark.parametrize("name", ["uvicorn.access", "hypercorn.access", "gunicorn.access"])
def test_access_logger_a_server_switched_off_stays_off(
    name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An access logger the server switched off before ``setup()`` (no handlers, no
    propagation: ``uvicorn --no-access-log``, then an app factory calling ``setup()``) stays
    off, so the middleware's access line is the only one; ``hasHandlers()``, which uvicorn
    asks before logging access at all, stays False."""
    server_logger = logging.getLogger(name)
    monkeypatch.setattr(server_logger, "handlers", [])
    monkeypatch.setattr(server_logger, "propagate", False)
    _setup()
    server_logger.info("127.0.0.1 - GET / 200")
    assert _lines(capsys) == []
    assert not server_logger.hasHandlers()


def test_logger_created_before_setup_is_a_noop_then_works(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A module-level logger (and one bound before setup) prints nothing until setup."""
    log = obs.get_logger("early", component="db")
    bound = log.bind(shard=3)
    log.info("before")
    bound.info("before")
    assert capsys.readouterr().out == ""
    _setup()
    log.info("after")
    bound.info("bound after")
    first, second = _lines(capsys)
    assert (first["event"], first["component"]) == ("after", "db")
    assert (second["event"], second["shard"], second["component"]) == ("bound after", 3, "db")


def test_nothing_is_printed_after_shutdown(capsys: pytest.CaptureFixture[str]) -> None:
    """After shutdown every logger (proxy, bound, structlog, stdlib) is silent and cheap."""
    _setup()
    log = obs.get_logger("t")
    bound = log.bind(a=1)
    log.info("before")
    assert len(_lines(capsys)) == 1
    obs.shutdown(timeout=1)
    log.info("after")
    bound.info("after")
    log.bind(b=2).error("after")
    structlog.get_logger().info("after")
    logging.getLogger("lib").error("after")
    assert capsys.readouterr().out == ""


def test_level_filtering(capsys: pytest.CaptureFixture[str]) -> None:
    """log_level drops lower records from structlog and stdlib alike."""
    _setup(log_level="warning")
    log = obs.get_logger("t")
    log.info("dropped")
    log.debug("dropped")
    logging.getLogger("lib").info("dropped")
    log.warning("kept")
    logging.getLogger("lib").error("kept too")
    assert [line["event"] for line in _lines(capsys)] == ["kept", "kept too"]


def test_plain_structlog_loggers_use_the_pipeline(capsys: pytest.CaptureFixture[str]) -> None:
    """structlog.get_logger() after setup writes through the same chain."""
    _setup()
    structlog.get_logger("plain").info("hello", x=1)
    (line,) = _lines(capsys)
    assert (line["event"], line["x"], line["service.name"]) == ("hello", 1, "svc")


def test_broken_stdout_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """A closed or missing stdout drops lines instead of raising into the application."""
    _setup()
    monkeypatch.setattr(sys, "stdout", None)
    obs.get_logger("t").info("dropped")
    logging.getLogger("lib").warning("dropped")


@pytest.mark.parametrize(
    "extra_keys", [("user",), ("user", "span_id", "service")], ids=["plain", "ids-and-static"]
)
@pytest.mark.parametrize("in_span", [False, True], ids=["no-span", "in-span"])
@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"event": "e", "user": "u", "password": "p", "nested": {"token": "t", "ok": 1}},
        {"event": None, "level": "shadowed", "service.name": "caller's"},
    ],
)
def test_enrich_equals_the_three_processors_it_fuses(
    fields: dict[str, Any], in_span: bool, extra_keys: tuple[str, ...]
) -> None:
    """``Enrich`` gives exactly what ``AddFields``, ``add_trace_context`` and
    ``RedactFields`` give in a row (same fields, same order), apart from the timestamp --
    also when the redactor calls a span id or a static field sensitive."""
    from unified_obs.redact import Redactor

    static = {"service.name": "svc"}
    redactor = Redactor(extra_keys)
    chain = (proc.AddFields(static), proc.add_trace_context, proc.RedactFields(redactor))
    provider = TracerProvider(shutdown_on_exit=False)
    with obs.bound(request_id="r1"):
        span = provider.get_tracer("t").start_span("s") if in_span else None
        token = otel_context.attach(trace.set_span_in_context(span)) if span else None
        try:
            expected: Any = dict(fields, nested=dict(fields.get("nested", {})))
            for step in chain:
                expected = step(None, "warn", expected)
            got = proc.Enrich(static, redactor)(
                None, "warn", dict(fields, nested=dict(fields.get("nested", {})))
            )
        finally:
            if token is not None:
                otel_context.detach(token)
    expected.pop("timestamp"), got.pop("timestamp")
    assert list(got.items()) == list(expected.items())
    assert ("trace_id" in got) is in_span


def test_logger_fields_named_event_do_not_replace_the_calls_event(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A logger bound with an ``event`` field still writes each call's own event (the
    one-step path steps aside for it)."""
    _setup()
    obs.get_logger("t", event="bound").info("called", a=1)
    (line,) = _lines(capsys)
    assert line["event"] == "called"
    assert line["a"] == 1


def test_trace_ids_without_tuple_unpacking(monkeypatch: pytest.MonkeyPatch) -> None:
    """The current span's ids and flags as zero-padded lowercase hex; with a span context
    that does not unpack as the SDK's tuple, the ids come from its properties, the same."""
    provider = TracerProvider(shutdown_on_exit=False)
    span = provider.get_tracer("t").start_span("s")
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        unpacked = proc.add_trace_context(None, "info", {})
        monkeypatch.setattr(proc, "_UNPACKS", False)
        read = proc.add_trace_context(None, "info", {})
    finally:
        otel_context.detach(token)
    ctx = span.get_span_context()
    assert unpacked == read
    assert read == {
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "trace_flags": format(ctx.trace_flags, "02x"),
    }


@pytest.mark.parametrize(
    ("now_ns", "expected"),
    [
        (1_700_000_000_123_456_789, "2023-11-14T22:13:20.123456Z"),
        (1_700_000_000_000_007_000, "2023-11-14T22:13:20.000007Z"),
        (1_700_000_001_999_999_999, "2023-11-14T22:13:21.999999Z"),
    ],
)
def test_timestamp_is_iso_utc_with_microseconds(
    monkeypatch: pytest.MonkeyPatch, now_ns: int, expected: str
) -> None:
    """The line's timestamp: ISO-8601 UTC, six zero-padded microsecond digits, ``Z``."""
    monkeypatch.setattr(time, "time_ns", lambda: now_ns)
    assert proc._timestamp() == expected


def test_json_renderer_writes_non_str_keys() -> None:
    """Keys that are not text are written as text (the slower orjson option, only then)."""
    odd: Any = {1: "a", "b": 2, None: True}
    line = proc.JSONRenderer()(None, "info", odd)
    assert json.loads(line) == {"1": "a", "b": 2, "null": True}
