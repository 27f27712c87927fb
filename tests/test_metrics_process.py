"""Process metrics (CPU, memory, descriptors, threads, GC counts): semantic-convention names
over OTLP, the usual Prometheus names on ``/metrics`` exactly once, and the off switch."""

from __future__ import annotations

import gc
import os
import pathlib
import shutil
import subprocess
import sys
import threading
from collections import Counter
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families

import unified_obs as obs
from tests.otlp_receiver import otlp_receiver
from unified_obs import metrics
from unified_obs.errors import ConfigError
from unified_obs.metrics import _process, _runtime

SEMCONV_SUMS = {  # OTLP name -> (unit, monotonic)
    "process.cpu.time": ("s", True),
    "process.memory.usage": ("By", False),
    "process.memory.virtual": ("By", False),
    "process.unix.file_descriptor.count": ("{file_descriptor}", False),
    "process.thread.count": ("{thread}", False),
    "cpython.gc.collections": ("{collection}", True),
    "cpython.gc.collected_objects": ("{object}", True),
    "cpython.gc.uncollectable_objects": ("{object}", True),
}
PROMETHEUS_FAMILIES = {  # /metrics family -> type
    "process_cpu_seconds": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_virtual_memory_bytes": "gauge",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
    "process_start_time_seconds": "gauge",
    "process_threads": "gauge",
    "python_gc_collections": "counter",
    "python_gc_objects_collected": "counter",
    "python_gc_objects_uncollectable": "counter",
    "unified_obs_gc_pause_duration_seconds": "histogram",
    "unified_obs_asyncio_loop_lag_seconds": "histogram",
    "python_info": "gauge",
}


Shape = dict[str, tuple[str, str, str, frozenset[tuple[str, frozenset[str]]]]]
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def _setup(**options: Any) -> None:
    obs.setup(service_name="process-test", traces_exporter="none", log_stdlib=False, **options)


def _attributes(point: Any) -> dict[str, Any]:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in point.attributes}


def _our_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("unified_obs-")}


def _shape(body: bytes, parse: Any) -> Shape:
    """Each family's type, HELP, unit and (sample name, label names) pairs: a scrape
    without its values."""
    return {
        family.name: (
            family.type,
            family.documentation,
            family.unit,
            frozenset((s.name, frozenset(s.labels)) for s in family.samples),
        )
        for family in parse(body.decode())
    }


def _prometheus_client_shape(encode: Any, parse: Any) -> Shape:
    """What a fresh registry with prometheus_client's default process, GC and platform
    collectors shows."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    PlatformCollector(registry=registry)
    return _shape(encode(registry), parse)


def _promtool_accepts(body: bytes) -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool missing: install the Debian package 'prometheus'"
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_process_metric_goes_over_otlp_under_its_semantic_convention_name() -> None:
    """CPU time per ``cpu.mode``, memory, virtual memory, file descriptors, threads and the
    CPython GC counts per ``cpython.gc.generation`` (an int, as the conventions type it)
    reach a real OTLP receiver with the conventions' names, units and instrument kinds."""
    with otlp_receiver() as (endpoint, received):
        _setup(environ={}, otlp_endpoint=endpoint)
        gc.collect(2)
        assert obs.shutdown(timeout=5).ok
        found = {metric.name: metric for _, metric in received.metrics()}
    for name, (unit, monotonic) in SEMCONV_SUMS.items():
        assert name in found, f"{name} missing over OTLP"
        assert found[name].unit == unit
        assert found[name].WhichOneof("data") == "sum"
        assert found[name].sum.is_monotonic is monotonic
    modes = {_attributes(p)["cpu.mode"] for p in found["process.cpu.time"].sum.data_points}
    assert modes == {"user", "system"}
    collections = {
        _attributes(p)["cpython.gc.generation"]: p.as_double
        for p in found["cpython.gc.collections"].sum.data_points
    }
    assert set(collections) == {0, 1, 2}
    assert collections[2] >= 1
    rss = found["process.memory.usage"].sum.data_points[0].as_double
    with open("/proc/self/statm") as statm:
        resident = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    assert 0.5 * resident < rss < 2 * resident
    assert found["process.unix.file_descriptor.count"].sum.data_points[0].as_double >= 3


def test_metrics_shows_each_process_family_once_and_promtool_accepts_it() -> None:
    """``/metrics`` has each process and GC family exactly once, under the names every
    Prometheus dashboard knows (prometheus_client's own collectors are replaced, not
    doubled; no ``process_cpu_time`` twin), and ``promtool check metrics`` accepts it."""
    _setup(environ={})
    _, _, body = metrics.render()
    families = list(text_string_to_metric_families(body.decode()))
    types = Counter(f.name for f in families)
    assert [name for name, times in types.items() if times > 1] == []
    kinds = {f.name: f.type for f in families}
    for name, kind in PROMETHEUS_FAMILIES.items():
        assert kinds.get(name) == kind, name
    assert not [n for n in kinds if n.startswith(("process_cpu_time", "process_memory_usage"))]
    _promtool_accepts(body)


@pytest.mark.parametrize(
    ("accept", "encode", "parse"),
    [
        (None, generate_latest, text_string_to_metric_families),
        (
            OPENMETRICS,
            openmetrics.generate_latest,
            openmetrics_parser.text_string_to_metric_families,
        ),
    ],
    ids=["text-0.0.4", "openmetrics-1.0"],
)
def test_metrics_shows_prometheus_client_s_own_process_and_gc_families(
    accept: str | None, encode: Any, parse: Any
) -> None:
    """Dashboards and alerts written for prometheus_client keep working: ``/metrics`` has
    the very families its default process, GC and platform collectors show (names,
    types, units, HELP, sample names and label names: ``generation``, one unlabelled
    ``process_cpu_seconds_total``, no scope labels, no ``_created``), plus
    ``process_threads``, which it does not have."""
    _setup(environ={})
    expected = _prometheus_client_shape(encode, parse)
    _, _, body = metrics.render(accept)
    shown = _shape(body, parse)
    assert {name: shown.get(name) for name in expected} == expected
    ours = {name for name in shown if name.startswith(("process_", "python_"))}
    assert ours - set(expected) == {"process_threads"}
    _promtool_accepts(metrics.render()[2])


def test_the_cpu_series_on_metrics_is_user_plus_system_and_otlp_keeps_the_modes() -> None:
    """``process_cpu_seconds_total`` is the sum of ``process.cpu.time``'s user and
    system series, which the instrument (what OTLP sends) keeps apart."""
    _setup(environ={})
    sum(i * i for i in range(200_000))  # some user CPU
    _, _, body = metrics.render()
    cpu = [
        s
        for f in text_string_to_metric_families(body.decode())
        for s in f.samples
        if s.name == "process_cpu_seconds_total"
    ]
    modes = {m: metrics.value("process.cpu.time", **{"cpu.mode": m}) for m in ("user", "system")}
    assert len(cpu) == 1
    assert cpu[0].labels == {}
    assert None not in modes.values()
    assert abs(cpu[0].value - sum(v or 0.0 for v in modes.values())) < 0.05
    assert metrics.value("cpython.gc.collections", **{"cpython.gc.generation": "0"}) is not None


def test_multiprocess_metrics_shows_the_gc_generation_and_one_cpu_series(
    tmp_path: pathlib.Path,
) -> None:
    """In multiprocess mode too (the values summed from the workers' files) the GC
    families are labelled ``generation`` and the CPU time is one unlabelled series;
    the gauges have just the ``pid`` of each live worker; promtool accepts the scrape."""
    _setup(environ={}, metrics_multiprocess_dir=str(tmp_path))
    _, _, body = metrics.render()
    samples = {
        s.name: s
        for f in text_string_to_metric_families(body.decode())
        for s in f.samples
        if s.name.startswith(("process_", "python_gc_"))
    }
    labels = {name: set(sample.labels) for name, sample in samples.items()}
    assert labels["process_cpu_seconds_total"] == set()
    assert labels["python_gc_collections_total"] == {"generation"}
    assert labels["python_gc_objects_collected_total"] == {"generation"}
    assert labels["process_resident_memory_bytes"] == {"pid"}
    assert not [name for name in samples if name.endswith("_created")]
    _promtool_accepts(body)


def test_reset_gives_prometheus_client_its_own_collectors_back() -> None:
    """After ``reset()`` (the process without unified_obs) ``/metrics`` has
    prometheus_client's own process family again, once."""
    _setup(environ={})
    obs.testing.reset()
    _, _, body = metrics.render()
    names = [f.name for f in text_string_to_metric_families(body.decode())]
    assert names.count("process_resident_memory_bytes") == 1


def test_the_cpu_counter_follows_the_processs_cpu_time() -> None:
    """``process.cpu.time`` per mode is this process's user and system CPU seconds."""
    _setup(environ={})
    sum(i * i for i in range(200_000))  # some user CPU
    user = metrics.value("process.cpu.time", **{"cpu.mode": "user"})
    assert user is not None
    assert abs(user - os.times().user) < 0.05


@pytest.mark.parametrize(
    "switch",
    [
        {"runtime_metrics": False, "environ": {}},
        {"environ": {"UNIFIED_OBS_RUNTIME_METRICS": "false"}},
    ],
    ids=["argument", "environment"],
)
def test_runtime_metrics_off_installs_no_thread_hook_or_instrument(switch: Any) -> None:
    """``setup(runtime_metrics=False)`` or ``UNIFIED_OBS_RUNTIME_METRICS=false``: no GC
    callback, no unraisable hook, no thread of ours, no runtime or process instrument;
    prometheus_client keeps its own process family on ``/metrics``."""
    callbacks, hook, threads = list(gc.callbacks), sys.unraisablehook, _our_threads()
    _setup(**switch)
    assert gc.callbacks == callbacks
    assert sys.unraisablehook is hook
    assert _our_threads() == threads
    assert _runtime.current() is None
    assert _process.current() is None
    names = {i.name for i in metrics.instruments()}
    assert not names & {*SEMCONV_SUMS, "unified_obs.gc.pause.duration"}
    _, _, body = metrics.render()
    assert b"process_resident_memory_bytes" in body


def test_runtime_metrics_on_installs_the_hook_and_thread() -> None:
    """By default the GC hook and the runtime thread are installed (the off switch's
    counterpart, so that its test cannot pass vacuously)."""
    callbacks = len(gc.callbacks)
    _setup(environ={})
    assert len(gc.callbacks) == callbacks + 1
    assert "unified_obs-runtime" in _our_threads()


def test_a_bad_runtime_metrics_value_is_refused() -> None:
    """A non-boolean in code is a ConfigError naming the field; a bad environment value
    warns naming the variable and keeps the default (as every UNIFIED_OBS_* variable)."""
    with pytest.raises(ConfigError, match="runtime_metrics"):
        _setup(environ={}, runtime_metrics="no")
    with pytest.warns(RuntimeWarning, match="UNIFIED_OBS_RUNTIME_METRICS"):
        _setup(environ={"UNIFIED_OBS_RUNTIME_METRICS": "nope"})
    assert _runtime.current() is not None


def test_a_forked_child_counts_gc_collections_once_and_its_own_cpu() -> None:
    """A forked child's GC counts go on from the parent's (the interpreter's counts are
    inherited, not added again) and its CPU counter goes on from the parent's value
    without jumping: the child's own CPU starts from zero."""
    _setup(environ={})
    gen = {"cpython.gc.generation": "2"}
    gc.collect(2)
    user_before = metrics.value("process.cpu.time", **{"cpu.mode": "user"}) or 0.0
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running the parent's cleanup
        try:
            counted = metrics.value("cpython.gc.collections", **gen)
            user = metrics.value("process.cpu.time", **{"cpu.mode": "user"}) or 0.0
            ok = counted == gc.get_stats()[2]["collections"] and user - user_before < 0.5
            os.write(write, b"ok" if ok else f"{counted} {user} {user_before}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        said = pipe.read().decode()
    os.waitpid(pid, 0)
    assert said == "ok"


def test_runtime_metrics_off_in_multiprocess_mode_starts_no_worker_thread(
    tmp_path: pathlib.Path,
) -> None:
    """Off in multiprocess mode: no per-worker refresh thread and no process
    instruments either, and prometheus_client's per-process collector is not put back
    (it would show the scraping worker's numbers as the service's)."""
    threads = _our_threads()
    _setup(environ={}, runtime_metrics=False, metrics_multiprocess_dir=str(tmp_path))
    assert _our_threads() == threads
    assert _process.current() is None
    _, _, body = metrics.render()
    assert b"process_resident_memory_bytes" not in body
