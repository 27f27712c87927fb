"""The public test helpers: capture() with and without a live setup, and reset()."""

from __future__ import annotations

import logging

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

import unified_obs as obs
from unified_obs import _setup
from unified_obs.pytest_plugin import obs_capture, obs_reset  # noqa: F401 - fixtures
from unified_obs.testing import Captured, capture, reset


def test_capture_without_setup_sets_up_and_cleans_up() -> None:
    """With nothing set up, capture() sets up quietly and resets the process afterwards."""
    with capture() as cap:
        assert _setup.active() is cap.telemetry
        with trace.get_tracer("t").start_as_current_span("work") as span:
            obs.get_logger("t").info("inside", n=1)
        trace_id = format(span.get_span_context().trace_id, "032x")
        assert cap.span("work").name == "work"
        # only the test's own logger: an earlier test's SDK thread may still log a warning
        (line,) = [record for record in cap.logs if record.get("logger") == "t"]
        assert line["event"] == "inside"
        assert line["trace_id"] == trace_id
    assert _setup.active() is None
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)


def test_capture_with_a_live_setup_uses_it_and_leaves_it_running(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Inside an existing setup, capture() records and afterwards removes only its own hooks."""
    tel = obs.setup(environ={}, service_name="svc", log_format="json", handle_signals=False)
    chain = list(tel.log_pipeline.processors)
    with capture() as cap:
        assert cap.telemetry is tel
        obs.get_logger("t").info("captured")
        logging.getLogger("lib").warning("stdlib captured")
    ours = [r for r in cap.logs if not str(r.get("logger")).startswith("opentelemetry")]
    assert [r["event"] for r in ours] == ["captured", "stdlib captured"]
    assert _setup.active() is tel
    assert tel.log_pipeline.processors == chain
    obs.get_logger("t").info("not captured")
    with trace.get_tracer("t").start_as_current_span("not captured"):
        pass
    assert cap.logs[-1]["event"] != "not captured"
    assert cap.spans == ()
    assert "not captured" in capsys.readouterr().out


def test_span_lookup_and_clear() -> None:
    """span(name) demands exactly one match; clear() forgets spans and logs."""
    with capture() as cap:
        tracer = trace.get_tracer("t")
        for _ in range(2):
            with tracer.start_as_current_span("twice"):
                obs.get_logger("t").info("x")
        with pytest.raises(AssertionError, match="expected one span 'twice'"):
            cap.span("twice")
        cap.clear()
        assert list(cap.spans) == []
        assert cap.logs == []


def test_reset_allows_setup_again_without_warning() -> None:
    """After reset(), setup() builds a fresh handle and installs its provider globally."""
    first = obs.setup(environ={}, service_name="one", handle_signals=False)
    reset()
    assert _setup.active() is None
    second = obs.setup(environ={}, service_name="two", handle_signals=False)
    assert second is not first
    assert trace.get_tracer_provider() is second.tracer_provider
    assert second.resource.attributes["service.name"] == "two"


def test_reset_restores_the_set_once_otel_globals() -> None:
    """OpenTelemetry's tracer provider can be set only once per process; reset() lifts that."""
    one, two = TracerProvider(), TracerProvider()
    trace.set_tracer_provider(one)
    assert trace.get_tracer_provider() is one
    reset()
    trace.set_tracer_provider(two)
    assert trace.get_tracer_provider() is two


def test_reset_restores_logging_and_structlog() -> None:
    """reset() puts stdlib handlers, levels and structlog's configuration back."""
    root = logging.getLogger()
    handler = logging.NullHandler()
    root.addHandler(handler)
    uvicorn = logging.getLogger("uvicorn.error")
    uvicorn.propagate = False
    before = structlog.get_config()["processors"]
    obs.setup(environ={}, service_name="svc", handle_signals=False)
    assert handler not in root.handlers
    reset()
    assert handler in root.handlers
    assert uvicorn.propagate is False
    assert structlog.get_config()["processors"] == before
    root.removeHandler(handler)
    uvicorn.propagate = True


def test_reset_clears_bound_fields() -> None:
    """Fields bound by one test do not leak into the next."""
    obs.bind(tenant="acme")
    reset()
    assert obs.bound_fields() == {}


def test_pytest_plugin_capture_fixture(obs_capture: Captured) -> None:  # noqa: F811
    """The plugin's obs_capture fixture yields a live capture of this test's telemetry."""
    with trace.get_tracer("t").start_as_current_span("fixture-span"):
        obs.get_logger("t").info("from fixture")
    assert obs_capture.span("fixture-span").name == "fixture-span"
    assert obs_capture.logs[-1]["event"] == "from fixture"
    assert _setup.active() is obs_capture.telemetry


def test_pytest_plugin_reset_fixture(obs_reset: None) -> None:  # noqa: F811
    """obs_reset hands the test a process with nothing set up."""
    assert _setup.active() is None
    obs.setup(environ={}, service_name="svc", handle_signals=False)
