"""Which fast paths each OpenTelemetry release gets, and that every fallback delivers.

`./run compat` runs this module at the declared floor (1.39, where the drop hook and the
log record limits probes fail on the real SDK, and the lean span path runs on the fields
it fills for SDKs before 1.41) and at the newest release; the forced-fallback test covers
the probes that pass on every supported release.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace

import unified_obs as obs
from tests.otel_release import SDK
from tests.otlp_receiver import otlp_receiver
from unified_obs import metrics
from unified_obs._compat import _probes, active_paths
from unified_obs.config import Settings
from unified_obs.tracing import fast_paths

# docs/compatibility.md's table: the fast paths each release gets (True: fast path).
EXPECTED = {
    "lean_spans": True,
    "sampler_shortcut": True,
    "otel.batch_export_hook": True,
    "otel.batch_drop_hook": SDK >= (1, 45),
    "otel.provider_processors": True,
    "otel.processor_removal": True,
    "otel.sampler_root": True,
    "otel.resource_identity": True,
    "otel.unset_meter_provider": True,
    "otel.global_reset": True,
    "otel.suppress_keys": True,
    "otel.logs_record_limits": SDK >= (1, 45),
    "otel.runtime_contextvar": True,
    "otel.lean_spans": True,
    "prometheus.child_values": True,
    "wrapt.static_binding": True,
    "cpython.current_frames": True,
    "otlp_grpc.retry_info_only": True,
}
# testing.reset() itself needs global_reset: forcing it off would leak providers across
# tests; the suppression keys and the runtime context variable are constants taken when
# _compat.opentelemetry and context are imported.
NOT_FORCED = frozenset({"otel.global_reset", "otel.suppress_keys", "otel.runtime_contextvar"})


@pytest.fixture
def restored_answers() -> Iterator[dict[str, bool]]:
    """The probes' cached answers, put back after the test."""
    saved = dict(_probes._answers)
    yield _probes._answers
    _probes._answers.clear()
    _probes._answers.update(saved)


def test_fast_paths_match_the_installed_release() -> None:
    """On the installed SDK, every probe gives the answer the compatibility table lists
    for that release (so a release that changes a private layout is caught here, and the
    docs/compatibility.md's table stays true)."""
    paths = fast_paths(Settings.from_env({}))
    assert paths == {**EXPECTED, **{k: v for k, v in paths.items() if k not in EXPECTED}}
    assert set(EXPECTED) <= set(paths), sorted(set(EXPECTED) - set(paths))


def _decorated() -> int:
    return 1


def _deliver() -> tuple[set[str], set[str], set[str], bool]:
    """setup(), a span with a log line inside, a counter, shutdown(): what the receiver got."""
    with otlp_receiver() as (endpoint, received):
        obs.setup(service_name="paths", environ={}, otlp_endpoint=endpoint, handle_signals=False)
        with trace.get_tracer("paths").start_as_current_span("fallback-span"):
            obs.get_logger("paths").info("fallback.line")
        obs.traced(_decorated)()  # decorated now: after a test forced a probe's answer
        obs.counter("paths.events", "Events").inc()
        result = obs.shutdown(timeout=10)
        spans = {span.name for _, span in received.spans()}
        bodies = {record.body.string_value for _, record in received.logs()}
        names = {metric.name for _, metric in received.metrics()}
    return spans, bodies, names, result.ok


# the lean span path is chosen by its own cached probe (tests/test_lean_spans.py forces it)
LEAN = frozenset({"lean_spans", "otel.lean_spans"})


@pytest.mark.parametrize("path", sorted(set(EXPECTED) - NOT_FORCED - LEAN))
def test_each_fallback_delivers_every_signal(path: str, restored_answers: dict[str, bool]) -> None:
    """With one fast path's probe answered "no" (as on a release whose private layout
    differs), spans, logs and metrics still reach the OTLP receiver and shutdown() is ok."""
    if path == "sampler_shortcut":
        restored_answers["otel.sampler_root"] = False
    else:
        restored_answers[path] = False
    spans, bodies, names, ok = _deliver()
    assert ok
    assert "fallback-span" in spans
    assert any(name.endswith("_decorated") for name in spans), spans
    assert "fallback.line" in bodies
    assert "paths.events" in names


def test_exports_are_counted_on_whichever_hooks_the_release_has() -> None:
    """The self-metrics count exported spans wherever the export hook works (every
    supported release); where the drop hook's probe fails (before 1.45) nothing is
    counted as dropped rather than something wrong."""
    with otlp_receiver() as (endpoint, received):
        obs.setup(service_name="paths", environ={}, otlp_endpoint=endpoint, handle_signals=False)
        for number in range(3):
            with trace.get_tracer("paths").start_as_current_span(f"s{number}"):
                pass
        assert obs.shutdown(timeout=10).ok
        spans = len(received.spans())
    exported = metrics.value("unified_obs.export.items", signal="traces", outcome="exported")
    dropped = metrics.value("unified_obs.export.items", signal="traces", outcome="dropped")
    assert exported == spans == 3
    assert not dropped
    assert active_paths()["otel.batch_export_hook"]


def test_a_probe_is_run_once_and_a_raising_one_means_the_public_path(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """decide() runs a probe once and caches its answer; a probe that raises (a layout it
    does not know) answers "no"; each answer is logged once, at debug level, by name."""
    monkeypatch.setattr(_probes, "_answers", {})
    monkeypatch.setattr(_probes, "_probes", {})
    calls: list[str] = []

    def works() -> bool:
        calls.append("works")
        return True

    def breaks() -> bool:
        calls.append("breaks")
        raise AttributeError("_gone")

    with caplog.at_level("DEBUG", logger="unified_obs"):
        answers = [_probes.decide("test.works", works) for _ in range(3)]
        answers += [_probes.decide("test.breaks", breaks) for _ in range(3)]
    assert answers == [True] * 3 + [False] * 3
    assert calls == ["works", "breaks"]
    logged = [r.getMessage() for r in caplog.records if r.name == "unified_obs"]
    assert logged == [
        "unified_obs: test.works: fast path",
        "unified_obs: test.breaks: public API",
    ]
