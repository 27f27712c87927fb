"""Multiprocess mode: exact totals over workers, no stale series, bounded files (gunicorn)."""

from __future__ import annotations

import glob
import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

import unified_obs as obs
from tests.otlp_receiver import Received, otlp_receiver
from unified_obs import metrics

_CHILD = """
import sys
import unified_obs as obs
hits = obs.counter("jobs.done", "Jobs", labels=("queue",))
alive = obs.gauge("worker.alive", "Worker up", multiprocess_mode="liveall")
depth = obs.gauge("queue.depth", "Depth", multiprocess_mode="livesum")
obs.setup(service_name="child", environ={}, metrics_multiprocess_dir=sys.argv[1],
          log_level="error")
hits.labels("q").inc(int(sys.argv[2]))
obs.histogram("job.latency", "Latency", unit="s").observe(0.2)
alive.set(1)
depth.set(5)
"""


def _promtool(body: bytes) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool missing: install the Debian package 'prometheus'"
    command = [promtool, "check", "metrics"]
    return subprocess.run(command, input=body.decode(), capture_output=True, text=True, timeout=30)


def _samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by name and sorted labels, leaving out the scope labels all carry."""
    families = text_string_to_metric_families(body.decode())
    return {
        (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k[:11] != "otel_scope_"))): (
            s.value
        )
        for f in families
        for s in f.samples
    }


def test_dead_processes_fold_into_archive(tmp_path: Path) -> None:
    """Counters of exited processes stay in the total (folded into one archive file);
    their live gauges disappear; the file count does not grow with process churn."""
    for amount in (1, 2, 3, 4, 5):
        subprocess.run(
            [sys.executable, "-c", _CHILD, str(tmp_path), str(amount)], check=True, timeout=60
        )
    obs.setup(service_name="scraper", environ={}, metrics_multiprocess_dir=str(tmp_path))
    obs.counter("jobs.done", "Jobs", labels=("queue",)).labels("q").inc(100)
    samples = _samples(metrics.render(None, None)[2])
    assert samples[("jobs_done_total", (("queue", "q"),))] == 115.0
    assert samples[("job_latency_seconds_bucket", (("le", "0.1"),))] == 0.0
    assert samples[("job_latency_seconds_bucket", (("le", "0.25"),))] == 5.0
    assert samples[("job_latency_seconds_count", ())] == 5.0
    assert not [key for key in samples if key[0] in ("worker_alive", "queue_depth")]
    files = sorted(os.path.basename(f) for f in glob.glob(str(tmp_path / "*.db")))
    mine = os.getpid()
    expected = ["counter_archive.db", "histogram_archive.db", f"counter_{mine}.db"]
    expected.append(f"histogram_{mine}.db")  # the runtime metrics' GC-pause histogram
    assert files == sorted([*expected, f"gauge_liveall_{mine}.db"])
    rss = [dict(k[1]) for k in samples if k[0] == "process_resident_memory_bytes"]
    assert rss == [{"pid": str(mine)}]
    assert samples[("process_cpu_seconds_total", ())] > 0  # user + system, as prometheus_client


def test_a_file_still_being_created_does_not_fail_the_scrape(tmp_path: Path) -> None:
    """A worker creates its file empty and sizes it a moment later: a scrape in between
    (a live worker's empty file) still answers 200 with the right totals, and the empty
    file of a process that died in between is removed instead of failing every scrape."""
    subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path), "7"], check=True, timeout=60)
    with subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                          stdin=subprocess.PIPE) as live:  # fmt: skip
        starting = tmp_path / f"counter_{live.pid}.db"
        starting.touch()
        died = tmp_path / "histogram_1999999999.db"  # no such pid
        died.touch()
        obs.setup(service_name="scraper", environ={}, metrics_multiprocess_dir=str(tmp_path))
        status, _, body = metrics.render(None, None)
        assert live.stdin is not None
        live.stdin.close()
    assert status == 200, body
    assert _samples(body)[("jobs_done_total", (("queue", "q"),))] == 7.0
    assert starting.exists()  # its process is alive: it will write it
    assert not died.exists()
    assert _promtool(body).returncode == 0


def test_instruments_made_before_setup_switch_to_multiprocess(tmp_path: Path) -> None:
    """An instrument defined at import time keeps its value when setup() turns on multiprocess
    mode, and afterwards writes to this process's file."""
    early = obs.counter("early.jobs")
    early.inc(2)
    obs.setup(service_name="switch", environ={}, metrics_multiprocess_dir=str(tmp_path))
    early.inc()
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path)
    assert glob.glob(str(tmp_path / f"counter_{os.getpid()}.db"))
    assert _samples(metrics.render(None, None)[2])[("early_jobs_total", ())] == 3.0


def test_gauge_steps_carry_into_multiprocess_mode(tmp_path: Path) -> None:
    """Steps of one taken before setup() turns on multiprocess mode carry into this
    process's file, and later steps go there too (through the file, not a lock-free
    count the other processes could not see)."""
    inflight = obs.gauge("early.inflight", multiprocess_mode="livesum").labels()
    inflight.up()
    inflight.up()
    obs.setup(service_name="switch", environ={}, metrics_multiprocess_dir=str(tmp_path))
    inflight.down()
    inflight.up()
    inflight.up()
    assert glob.glob(str(tmp_path / f"gauge_livesum_{os.getpid()}.db"))
    assert _samples(metrics.render(None, None)[2])[("early_inflight", ())] == 3.0


_APP = """
import os
import time

import unified_obs as obs
from unified_obs import metrics

served = obs.counter("app.requests", "Requests served", labels=("path",))
alive = obs.gauge("app.worker.alive", "One per live worker", multiprocess_mode="liveall")
otlp = os.environ["TEST_OTLP"]
obs.setup(service_name="gunicorn-test", metrics_multiprocess_dir=os.environ["TEST_MP_DIR"],
          log_level="error", traces_exporter="none", logs_exporter="none",
          metrics_exporter="otlp" if otlp else "none", otlp_endpoint=otlp or None,
          metric_export_interval=0.2)
alive.set(1)


def app(environ, start_response):
    pid = str(os.getpid())
    if environ["PATH_INFO"] == "/metrics":
        status, headers, body = metrics.render(environ.get("HTTP_ACCEPT"), None)
        start_response(f"{status} OK", headers + [("X-Pid", pid)])
        return [body]
    if environ["PATH_INFO"] == "/slow":
        time.sleep(0.05)  # keeps one worker busy so the other takes the next request
    served.labels("/work").inc()
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Pid", pid)])
    return [b"ok"]
"""


@contextmanager
def _gunicorn(
    tmp_path: Path, *, workers: int = 4, recycle: bool = True, otlp: str = "", preload: bool = False
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    (tmp_path / "mp_app.py").write_text(textwrap.dedent(_APP))
    mp_dir = tmp_path / "multiproc"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS_", "OTEL_"))}
    env.update(TEST_MP_DIR=str(mp_dir), PYTHONPATH=str(tmp_path), TEST_OTLP=otlp)
    command = [
        sys.executable, "-m", "gunicorn", "mp_app:app", "--workers", str(workers),
        "--bind", f"127.0.0.1:{_free_port() if preload else 0}", "--graceful-timeout", "5",
        "--log-level", "info", "--error-logfile", str(tmp_path / "gunicorn.log"),
    ]  # fmt: skip
    if recycle:
        command += ["--max-requests", "12", "--max-requests-jitter", "6"]
    if preload:
        command.append("--preload")
    server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)
    try:
        # --preload: setup() in the master takes over gunicorn's logger before it logs the port
        port = int(command[command.index("--bind") + 1].rsplit(":", 1)[1])
        yield port or _wait_for_port(tmp_path / "gunicorn.log"), server
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(log: Path) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(
            r"Listening at: http://127\.0\.0\.1:(\d+)", log.read_text() if log.exists() else ""
        )
        if found:
            return int(found.group(1))
        time.sleep(0.05)
    raise AssertionError("gunicorn did not start: " + (log.read_text() if log.exists() else ""))


def _get(port: int, path: str) -> tuple[int, str, bytes]:
    for attempt in range(50):  # a worker may be restarting; the listen backlog holds us
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.getheader("X-Pid", ""), response.read()
        except (ConnectionError, http.client.RemoteDisconnected):
            time.sleep(0.05 * attempt)
        finally:
            connection.close()
    raise AssertionError(f"GET {path} kept failing")


def _live_children(master: int) -> set[str]:
    found = set()
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master and fields[0] != b"Z":
            found.add(stat.split("/")[2])
    return found


def test_gunicorn_workers_report_exact_totals_without_stale_series(tmp_path: Path) -> None:
    """4 gunicorn workers recycled by max_requests serve N requests: every scrape reports
    exactly N, per-worker gauge series (ours and the process metrics) exist only for live
    workers, files stay bounded, and promtool accepts the output."""
    requests = 150
    with _gunicorn(tmp_path) as (port, server):
        pids = set()
        for _ in range(requests):
            status, pid, _ = _get(port, "/work")
            assert status == 200
            pids.add(pid)
        totals, stale = [], None
        for _ in range(40):  # recycling continues during scrapes; settle on a stable view
            status, _, body = _get(port, "/metrics")
            assert status == 200, body
            samples = _samples(body)
            totals.append(samples[("app_requests_total", (("path", "/work"),))])
            worker_pids = {dict(k[1])["pid"] for k in samples if k[0] == "app_worker_alive"}
            rss_pids = {
                dict(k[1])["pid"] for k in samples if k[0] == "process_resident_memory_bytes"
            }
            stale = (worker_pids | rss_pids) - _live_children(server.pid)
            if not stale and len(worker_pids) == len(rss_pids) == 4:
                break
            time.sleep(0.1)
        files = glob.glob(str(tmp_path / "multiproc" / "*.db"))
        lint = _promtool(body)
    assert len(pids) > 4, "max_requests should have recycled workers"
    assert totals == [float(requests)] * len(totals)
    assert stale == set()
    assert len(rss_pids) == 4
    assert len(files) <= 4 * 3 + 3
    assert lint.returncode == 0, lint.stdout + lint.stderr


def _per_instance(received: Received) -> dict[str, float]:
    """The latest cumulative app.requests value pushed by each service.instance.id."""
    latest: dict[str, float] = {}
    for resource, metric in received.metrics():
        if metric.name == "app.requests":
            points = metric.sum.data_points
            latest[resource["service.instance.id"]] = points[0].as_double if points else 0.0
    return latest


def test_gunicorn_workers_push_otlp_with_distinct_instance_ids(tmp_path: Path) -> None:
    """Each worker pushes its own cumulative counts under its own service.instance.id, so a
    backend can add them up: the per-instance totals sum to the requests served."""
    requests = 40
    with (
        otlp_receiver() as (endpoint, received),
        _gunicorn(tmp_path, workers=2, recycle=False, otlp=endpoint) as (port, _server),
    ):
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda _: _get(port, "/slow"), range(requests)))
        arrived = received.wait_for(lambda r: sum(_per_instance(r).values()) == requests, 15)
        instances = _per_instance(received)
    assert [status for status, _, _ in answers] == [200] * requests
    assert arrived, instances
    assert len({pid for _, pid, _ in answers}) == 2
    assert len([v for v in instances.values() if v > 0]) == 2


def test_gunicorn_preload_forks_after_setup_and_stays_exact(tmp_path: Path) -> None:
    """With --preload, setup() runs once in the master before the fork; recycled workers
    still write their own files and every scrape reports exactly the requests served."""
    requests = 60
    with _gunicorn(tmp_path, workers=2, preload=True) as (port, _server):
        pids = {_get(port, "/work")[1] for _ in range(requests)}
        scrapes = [_samples(_get(port, "/metrics")[2]) for _ in range(4)]
    assert len(pids) > 2, "max_requests should have recycled workers"
    for samples in scrapes:
        assert samples[("app_requests_total", (("path", "/work"),))] == float(requests)
