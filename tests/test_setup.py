"""setup(): idempotent wiring of traces and logs, samplers, limits, propagators, no-op before."""

from __future__ import annotations

import atexit
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider

import unified_obs as obs
from unified_obs import _setup
from unified_obs.testing import capture


def _setup_quiet(**options: Any) -> obs.Telemetry:
    settings: dict[str, Any] = {
        "service_name": "svc",
        "log_format": "json",
        "handle_signals": False,
        **options,
    }
    return obs.setup(environ={}, **settings)


def test_setup_returns_the_handle_and_installs_the_tracer_provider() -> None:
    """The handle is live and its provider is the global one."""
    tel = _setup_quiet()
    assert _setup.active() is tel
    assert trace.get_tracer_provider() is tel.tracer_provider
    assert not tel.is_shut_down
    assert tel.settings.service_name == "svc"


def test_second_setup_warns_and_returns_the_same_handle(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Calling setup() twice warns, returns the first handle and adds no second handler."""
    tel = _setup_quiet()
    handlers = list(logging.getLogger().handlers)
    with pytest.warns(RuntimeWarning, match="already called"):
        again = _setup_quiet(service_name="other")
    assert again is tel
    assert logging.getLogger().handlers == handlers
    logging.getLogger("lib").warning("once")
    obs.get_logger("app").warning("once")
    lines = capsys.readouterr().out.splitlines()
    assert len([line for line in lines if '"logger":"opentelemetry' not in line]) == 2


def test_everything_is_a_noop_before_setup(capsys: pytest.CaptureFixture[str]) -> None:
    """Loggers, binding, spans and shutdown work and print nothing before setup()."""
    log = obs.get_logger("early")
    with obs.bound(a=1), trace.get_tracer("t").start_as_current_span("s") as span:
        log.info("nothing")
        log.bind(b=2).error("nothing")
        assert obs.current_trace_ids() is None
    assert not span.is_recording()
    assert obs.shutdown().ok
    assert capsys.readouterr().out == ""
    assert _setup.active() is None


def test_atexit_hook_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """setup() registers one atexit hook that shuts the live handle down."""
    registered: list[Callable[[], Any]] = []
    monkeypatch.setattr(atexit, "register", registered.append)
    tel = _setup_quiet()
    assert _setup._at_exit in registered
    _setup._at_exit()
    assert tel.is_shut_down


@pytest.mark.parametrize(
    ("sampler", "arg", "recording"),
    [
        ("always_on", 1.0, True),
        ("always_off", 1.0, False),
        ("parentbased_always_off", 1.0, False),
        ("traceidratio", 0.0, False),
        ("parentbased_traceidratio", 1.0, True),
    ],
)
def test_sampler_choice(sampler: str, arg: float, recording: bool) -> None:
    """Each OTEL_TRACES_SAMPLER name builds the matching sampler."""
    _setup_quiet(traces_sampler=sampler, traces_sampler_arg=arg)
    with trace.get_tracer("t").start_as_current_span("s") as span:
        assert span.is_recording() is recording


def test_parent_based_sampler_follows_the_remote_parent() -> None:
    """The default ParentBased sampler keeps an unsampled remote parent unsampled."""
    _setup_quiet()
    carrier = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}
    ctx = propagate.extract(carrier)
    with trace.get_tracer("t").start_as_current_span("child", context=ctx) as span:
        assert not span.is_recording()
        assert format(span.get_span_context().trace_id, "032x").startswith("0af76519")


def test_attribute_values_have_a_finite_default_length() -> None:
    """A 10,000-character attribute is cut to the default limit (4096)."""
    with capture() as cap:
        with trace.get_tracer("t").start_as_current_span("s") as span:
            span.set_attribute("big", "x" * 10_000)
        attributes = cap.span("s").attributes
    assert attributes is not None
    assert len(str(attributes["big"])) == 4096


@pytest.mark.parametrize(
    ("names", "fields"),
    [
        (("tracecontext", "baggage"), {"traceparent", "tracestate", "baggage"}),
        (("tracecontext",), {"traceparent", "tracestate"}),
        (("none",), set()),
    ],
)
def test_propagators(names: tuple[str, ...], fields: set[str]) -> None:
    """OTEL_PROPAGATORS picks the global text-map propagators."""
    _setup_quiet(propagators=list(names))
    assert propagate.get_global_textmap().fields == fields


def test_injected_traceparent_matches_the_current_span() -> None:
    """The default propagators inject a W3C traceparent for the current span."""
    _setup_quiet()
    with trace.get_tracer("t").start_as_current_span("s") as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        ctx = span.get_span_context()
    assert carrier["traceparent"] == (
        f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"
    )


def test_existing_global_tracer_provider_is_kept_with_a_warning() -> None:
    """If someone installed a tracer provider first, setup() warns and leaves it alone."""
    theirs = TracerProvider()
    trace.set_tracer_provider(theirs)
    with pytest.warns(RuntimeWarning, match="global tracer provider"):
        tel = _setup_quiet()
    assert trace.get_tracer_provider() is theirs
    assert tel.tracer_provider is not theirs


def test_force_flush_reports_per_signal(capsys: pytest.CaptureFixture[str]) -> None:
    """force_flush runs every signal's flush and reports each one."""
    tel = _setup_quiet(traces_exporter="console", logs_exporter="console")
    with trace.get_tracer("t").start_as_current_span("flushed"):
        obs.get_logger("t").info("flushed")
    result = tel.force_flush(timeout=2)
    assert result.outcomes["traces"] == "ok"
    assert result.outcomes["logs"] == "ok"
    assert not tel.is_shut_down
    lines = capsys.readouterr().out.splitlines()
    assert any(json.loads(line).get("event") == "flushed" for line in lines)
