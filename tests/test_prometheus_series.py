"""One series per label set on ``/metrics``: OpenTelemetry-API attribute sets that map to
the same Prometheus labels become one sample, merged by the family's type, in both formats;
promtool, both ``prometheus_client`` parsers and a duplicate check accept every scrape."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from opentelemetry import metrics as otel_metrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

import unified_obs as obs
from tests.test_hostile import OPENMETRICS, promtool_check
from unified_obs import metrics
from unified_obs.config import Settings
from unified_obs.testing import reset

PROMETHEUS = shutil.which("prometheus")


def samples(body: bytes, openmetrics: bool = False) -> list[tuple[str, frozenset[Any], float]]:
    """Every sample of an exposition as (name, labels, value), in order."""
    parse: Any = parse_om if openmetrics else parse_text
    return [
        (s.name, frozenset(s.labels.items()), s.value)
        for family in parse(body.decode())
        for s in family.samples
    ]


def duplicates(found: list[tuple[str, frozenset[Any], float]]) -> list[Any]:
    """The series that appear more than once (Prometheus keeps only one of them)."""
    return [key for key, n in Counter((name, labels) for name, labels, _ in found).items() if n > 1]


def value(found: list[tuple[str, frozenset[Any], float]], name: str) -> list[float]:
    """The values of the samples named ``name``."""
    return [v for sample_name, _, v in found if sample_name == name]


def record_colliding_attributes() -> None:
    """A counter, a histogram and a gauge each recorded under ``a.b`` and under ``a_b``."""
    meter = otel_metrics.get_meter("third.party", "1.0")
    calls = meter.create_counter("lib.calls")
    calls.add(1, {"a.b": "x"})
    calls.add(2, {"a_b": "x"})
    sizes = meter.create_histogram("lib.sizes", unit="By")
    sizes.record(10, {"a.b": "x"})
    sizes.record(20, {"a_b": "x"})
    level = meter.create_gauge("lib.level")
    level.set(5, {"a.b": "x"})
    level.set(7, {"a_b": "x"})


@pytest.mark.parametrize("accept", [None, OPENMETRICS])
def test_colliding_attribute_sets_become_one_series(accept: str | None) -> None:
    """``a.b`` and ``a_b`` in two attribute sets give one series each (they were two
    samples of one series, and Prometheus dropped one): counters and histograms are summed,
    the gauge shows one value; promtool and the parsers accept the scrape."""
    obs.setup(service_name="merge", environ={})
    record_colliding_attributes()
    status, _, body = metrics.render(accept, None)
    assert status == 200
    found = samples(body, openmetrics=accept is not None)
    assert duplicates(found) == []
    assert value(found, "lib_calls_total") == [3.0]
    assert value(found, "lib_sizes_bytes_count") == [2.0]
    assert value(found, "lib_sizes_bytes_sum") == [30.0]
    assert value(found, "lib_sizes_bytes_bucket")[-1] == 2.0
    assert len(value(found, "lib_level")) == 1
    if accept is None:
        assert promtool_check(body) == ""


def test_merged_series_are_named_in_one_warning(capsys: pytest.CaptureFixture[str]) -> None:
    """The merge is not silent: one warning per family names it (not the values), however
    often it is scraped."""
    obs.setup(service_name="merge", environ={})
    record_colliding_attributes()
    for _ in range(3):
        metrics.render(None, None)
    out = capsys.readouterr().out
    assert out.count("metric 'lib_calls' has samples that map to one series") == 1
    assert '"x"' not in out


def test_scope_labels_can_be_turned_off() -> None:
    """``prometheus_without_scope_info=True`` (the specification's ``without_scope_info``)
    leaves ``otel_scope_name``/``otel_scope_version`` off every sample, ours and those of
    OpenTelemetry-API metrics; a histogram of ours and one of the API of the same name and
    labels then become one series, summed."""
    obs.setup(service_name="plain", environ={}, prometheus_without_scope_info=True)
    ours = obs.histogram("http.server.request.duration", unit="s", labels=("http.route",))
    ours.labels("/a").observe(0.1)
    meter = otel_metrics.get_meter("opentelemetry.instrumentation.asgi", "0.1")
    theirs = meter.create_histogram(
        "http.server.request.duration",
        unit="s",
        explicit_bucket_boundaries_advisory=list(metrics.SEMCONV_DURATION_BUCKETS),
    )
    theirs.record(0.2, {"http.route": "/a"})
    for accept in (None, OPENMETRICS):
        found = samples(metrics.render(accept, None)[2], openmetrics=accept is not None)
        assert not [labels for _, labels, _ in found if dict(labels).keys() & {"otel_scope_name"}]
        assert duplicates(found) == []
        assert value(found, "http_server_request_duration_seconds_count") == [2.0]


def test_scope_labels_switch_reads_the_environment() -> None:
    """``UNIFIED_OBS_PROMETHEUS_WITHOUT_SCOPE_INFO=true`` turns the scope labels off; a value
    that is not a boolean in code is a ``ConfigError`` at ``setup()``."""
    obs.setup(service_name="env", environ={"UNIFIED_OBS_PROMETHEUS_WITHOUT_SCOPE_INFO": "true"})
    obs.counter("env.hits").inc()
    found = samples(metrics.render(None, None)[2])
    assert [dict(labels) for name, labels, _ in found if name == "env_hits_total"] == [{}]
    with pytest.raises(obs.ConfigError, match="prometheus_without_scope_info"):
        Settings.from_env({}, prometheus_without_scope_info="yes")


def test_target_info_can_be_turned_off() -> None:
    """``prometheus_without_target_info=True`` (the specification's ``without_target_info``)
    leaves ``target_info`` out of the scrape."""
    obs.setup(service_name="quiet", environ={}, prometheus_without_target_info=True)
    obs.counter("quiet.hits").inc()
    for accept in (None, OPENMETRICS):
        found = samples(metrics.render(accept, None)[2], openmetrics=accept is not None)
        assert value(found, "target_info") == []
        assert value(found, "quiet_hits_total") == [1.0]


def test_histograms_with_other_buckets_are_not_summed(capsys: pytest.CaptureFixture[str]) -> None:
    """Two histogram series of one label set with different buckets cannot be added: the
    first stays whole (a valid histogram), the other is left out with a warning."""
    obs.setup(service_name="plain", environ={}, prometheus_without_scope_info=True)
    obs.histogram("job.duration", unit="s").observe(0.1)
    meter = otel_metrics.get_meter("other.lib")
    meter.create_histogram("job.duration", unit="s").record(0.2)  # the SDK's default buckets
    for accept in (None, OPENMETRICS):
        found = samples(metrics.render(accept, None)[2], openmetrics=accept is not None)
        assert duplicates(found) == []
        assert value(found, "job_duration_seconds_sum") == [0.1]
    assert "'job_duration_seconds' has two series with the same labels" in capsys.readouterr().out


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _query(prometheus: str, expr: str) -> list[Any]:
    """The instant vector ``expr`` evaluates to, from a real Prometheus."""
    answer = _get(f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert answer["status"] == "success", answer
    result: list[Any] = answer["data"]["result"]
    return result


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_real_prometheus_keeps_every_merged_value(tmp_path: Path) -> None:
    """A real Prometheus scraping ``/metrics`` (the admin server) stores the merged values:
    3 calls, not the 1 it kept when it dropped the second sample of the series as a
    duplicate, for the scrape as Prometheus negotiates it."""
    assert PROMETHEUS is not None, "prometheus missing: install the Debian package 'prometheus'"
    obs.setup(service_name="merge", environ={})
    record_colliding_attributes()
    admin = obs.admin.serve(0)
    port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: t\n    static_configs: [{{targets: ['127.0.0.1:{admin.port}']}}]\n"
    )
    command = [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path}/db"]
    command += [f"--web.listen-address=127.0.0.1:{port}"]
    prometheus = f"http://127.0.0.1:{port}"
    with (tmp_path / "prometheus.log").open("wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        found: list[Any] = []
        while not found and time.monotonic() < deadline:
            assert server.poll() is None, (tmp_path / "prometheus.log").read_text()
            time.sleep(0.5)  # waiting for a scrape to land, not an assertion
            with contextlib.suppress(OSError):
                found = _query(prometheus, 'lib_calls_total{a_b="x"}')
        assert [float(series["value"][1]) for series in found] == [3.0]
        [sizes] = _query(prometheus, 'lib_sizes_bytes_count{a_b="x"}')
        assert float(sizes["value"][1]) == 2.0
    finally:
        server.terminate()
        server.wait(timeout=20)
        admin.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


attribute_name = st.sampled_from(["a.b", "a_b", "a-b", "a..b", "a b", "c", "c.", "le", "key_le"])
recording = st.tuples(
    st.dictionaries(attribute_name, st.sampled_from(["x", "x", "y", ""]), max_size=2),
    st.integers(min_value=0, max_value=5),
)
"""Small attribute sets of few names and values, so that sets collide once mapped."""


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(recordings=st.lists(recording, max_size=8), scoped=st.booleans())
@example(
    recordings=[({"a.b": "x"}, 1), ({"a_b": "x"}, 2), ({"a-b": "x", "c": "y"}, 3)], scoped=False
)
def test_any_colliding_attributes_give_one_series_each(
    recordings: list[tuple[dict[str, str], int]], scoped: bool
) -> None:
    """Whatever attribute sets an OpenTelemetry-API counter and histogram record (names that
    collide once mapped, ``le``, scope labels on or off): each series appears once in both
    formats, the totals are the sums recorded, promtool and the strict OpenMetrics parser
    accept the scrape."""
    reset()
    obs.setup(
        service_name="props",
        environ={},
        handle_signals=False,
        prometheus_without_scope_info=not scoped,
    )
    meter = otel_metrics.get_meter("props")
    calls = meter.create_counter("props.calls")
    sizes = meter.create_histogram("props.sizes", unit="By")
    for attributes, amount in recordings:
        calls.add(amount, attributes)
        sizes.record(amount, attributes)
    text = metrics.render(None, None)[2]
    om = metrics.render(OPENMETRICS, None)[2]
    for found in (samples(text), samples(om, openmetrics=True)):
        assert duplicates(found) == []
        assert sum(value(found, "props_calls_total")) == sum(n for _, n in recordings)
        assert sum(value(found, "props_sizes_bytes_count")) == len(recordings)
    assert promtool_check(text) == ""
