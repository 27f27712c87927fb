"""The debug endpoints over real HTTP: off by default, loopback only by default, secrets
masked everywhere, stacks of threads and tasks, export status, bounded responses."""

from __future__ import annotations

import asyncio
import http.client
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

import orjson
import pytest
from opentelemetry import trace

import unified_obs as obs
from tests.otlp_receiver import closed_port, otlp_receiver
from unified_obs import ConfigError, debug
from unified_obs.admin import AdminServer
from unified_obs.config import Settings

CANARY = "c4n4ry-s3cr3t"


def _get(server: AdminServer, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _listening_ports() -> set[int]:
    """TCP ports this process listens on (its socket inodes matched in /proc/net/tcp*)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _secret_setup(endpoint: str) -> obs.Telemetry:
    """A setup with canaries in a header (code), the endpoint's user-info and query
    (environment) and a secret-looking resource attribute."""
    user_url = endpoint.replace("://", f"://user:{CANARY}@")
    return obs.setup(
        service_name="dbg",
        handle_signals=False,
        otlp_headers={"authorization": f"Bearer {CANARY}"},
        resource_attributes={"deploy.api_key": CANARY},
        environ={
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{user_url}/v1/traces",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"{endpoint}/v1/logs?token={CANARY}",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"{endpoint}/v1/metrics",
        },
    )


@contextmanager
def _served(telemetry: obs.Telemetry) -> Iterator[AdminServer]:
    server = telemetry.serve_debug()
    try:
        yield server
    finally:
        server.close()


def test_off_by_default() -> None:
    """setup() opens no listening socket, and the admin server does not answer /debug/*:
    the endpoints exist only on the listener ``serve_debug()`` opens."""
    before = _listening_ports()
    telemetry = obs.setup(service_name="dbg", handle_signals=False, environ={})
    assert _listening_ports() == before
    admin = telemetry.serve_admin()
    try:
        assert [_get(admin, path)[0] for path in ["/debug/", *debug.PATHS]] == [404] * 5
    finally:
        admin.close()
    with _served(telemetry) as server:
        assert _listening_ports() - before == {server.port}
        assert _get(server, "/debug/config")[0] == 200
        assert _get(server, "/livez")[0] == 404  # probes stay on their own listener


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "collector.example"])
def test_other_addresses_need_allow_remote(host: str) -> None:
    """Anything but loopback is refused with ConfigError unless explicitly allowed."""
    telemetry = obs.setup(service_name="dbg", handle_signals=False, environ={})
    with pytest.raises(ConfigError, match="loopback"):
        telemetry.serve_debug(host=host)
    debug.check_host(host, allow_remote=True)  # explicitly allowed: no error


def test_loopback_by_default() -> None:
    """The default listener is 127.0.0.1 on a port chosen at run time; ::1 and localhost
    count as loopback."""
    telemetry = obs.setup(service_name="dbg", handle_signals=False, environ={})
    with _served(telemetry) as server:
        assert (server.host, server.port > 0) == ("127.0.0.1", True)
    for host in ("127.0.0.1", "::1", "localhost"):
        debug.check_host(host, allow_remote=False)


def _parked_thread(ready: threading.Event, release: threading.Event) -> None:
    secret = CANARY  # a local a stack dump must not show
    ready.set()
    release.wait(30)
    del secret


async def _parked_coroutine(secret: str, ready: threading.Event) -> None:
    ready.set()
    await asyncio.sleep(30)


@contextmanager
def _parked() -> Iterator[None]:
    """A thread blocked in ``_parked_thread`` and, on a loop in another thread, a task
    suspended in ``_parked_coroutine``; both hold the canary in a local."""
    release, ready_thread, ready_task = threading.Event(), threading.Event(), threading.Event()
    loop = asyncio.new_event_loop()
    parked = threading.Thread(target=_parked_thread, args=(ready_thread, release), daemon=True)
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    parked.start()
    runner.start()
    future = asyncio.run_coroutine_threadsafe(_parked_coroutine(CANARY, ready_task), loop)
    assert ready_thread.wait(10)
    assert ready_task.wait(10)
    try:
        yield
    finally:
        release.set()
        future.cancel()
        loop.call_soon_threadsafe(loop.stop)
        runner.join(10)
        parked.join(10)
        loop.close()


def test_every_endpoint_is_free_of_secrets_and_shows_sources() -> None:
    """Config, threads, tasks, telemetry and the index carry no canary (headers, URL
    user-info and query, resource attribute, locals and coroutine arguments), while the
    config says where each value came from and the stacks name the blocked functions."""
    with otlp_receiver() as (endpoint, _), _parked():
        telemetry = _secret_setup(endpoint)
        with _served(telemetry) as server:
            pages = {path: _get(server, path) for path in ["/debug/", *debug.PATHS]}
    for path, (status, headers, body) in pages.items():
        assert status == 200, path
        assert CANARY.encode() not in body, path
        assert int(headers["content-length"]) == len(body) <= debug.MAX_BODY
    config = {e["name"]: e for e in orjson.loads(pages["/debug/config"][2])}
    assert config["otlp_headers"] == {
        "name": "otlp_headers",
        "env": "OTEL_EXPORTER_OTLP_HEADERS",
        "value": {"authorization": "***"},
        "source": "argument",
    }
    assert config["otlp_traces_endpoint"]["source"] == "environment"
    assert config["otlp_traces_endpoint"]["value"].startswith("http://***@127.0.0.1:")
    assert config["log_level"]["source"] == "default"
    assert b"in _parked_thread" in pages["/debug/threads"][2]
    tasks = pages["/debug/tasks"][2].decode()
    assert "running _parked_coroutine" in tasks
    assert "in sleep" in tasks  # followed down into what the coroutine awaits


def test_telemetry_reports_exports_and_queues() -> None:
    """After spans reach a real receiver, /debug/telemetry counts them as exported, says
    when, and shows an empty queue; a signal with no exporter says so."""
    with otlp_receiver() as (endpoint, received):
        telemetry = obs.setup(
            service_name="dbg",
            handle_signals=False,
            environ={},
            otlp_endpoint=endpoint,
            logs_exporter="none",
            metrics_exporter="none",
        )
        with trace.get_tracer("t").start_as_current_span("work"):
            pass
        assert telemetry.force_flush(5).ok
        assert received.wait_for(lambda r: bool(r.spans()))
        with _served(telemetry) as server:
            status, _, body = _get(server, "/debug/telemetry")
    report = orjson.loads(body)
    assert status == 200
    traces = report["traces"]
    assert traces["exporter"] == "otlp"
    assert traces["exported"] >= 1
    assert traces["last_exported_at"] is not None
    assert (traces["queued"], traces["failed"], traces["last_failed_at"]) == (0, 0, None)
    assert report["logs"]["exporter"] == "none"
    assert report["logs"]["endpoint"] is None


def test_telemetry_reports_failed_exports() -> None:
    """Spans sent to a closed port are counted as failed, with the time of the failure."""
    telemetry = obs.setup(
        service_name="dbg",
        handle_signals=False,
        environ={},
        otlp_traces_endpoint=f"http://127.0.0.1:{closed_port()}/v1/traces",
        otlp_timeout=0.5,
        logs_exporter="none",
        metrics_exporter="none",
    )
    with trace.get_tracer("t").start_as_current_span("work"):
        pass
    telemetry.force_flush(5)
    with _served(telemetry) as server:
        traces = orjson.loads(_get(server, "/debug/telemetry")[2])["traces"]
    assert traces["failed"] >= 1
    assert traces["failed_calls"] >= 1
    assert traces["last_failed_at"] is not None
    assert traces["last_error"]["kind"] == "the exporter returned FAILURE"


def test_responses_are_bounded_and_head_has_no_body() -> None:
    """With more threads than the listing's limit, /debug/threads shows the first ones and
    says how many there were; HEAD answers the headers only; unknown paths 404."""
    release = threading.Event()
    extra = [threading.Thread(target=release.wait, args=(30,), daemon=True) for _ in range(300)]
    telemetry = obs.setup(service_name="dbg", handle_signals=False, environ={})
    try:
        for thread in extra:
            thread.start()
        with _served(telemetry) as server:
            status, _headers, body = _get(server, "/debug/threads")
            head = _get(server, "/debug/threads", "HEAD")
            missing = _get(server, "/debug/heap")[0]
    finally:
        release.set()
        for thread in extra:
            thread.join(10)
    assert status == 200
    assert len(body) <= debug.MAX_BODY
    assert b"(first 256 shown)" in body.split(b"\n", 1)[0]
    assert body.count(b"\nThread ") == 256
    assert head[0] == 200
    assert head[2] == b""
    assert missing == 404


def _seconds_ago(stamp: str) -> float:
    return (datetime.now(timezone.utc) - datetime.fromisoformat(stamp)).total_seconds()


def test_telemetry_reports_metric_pushes() -> None:
    """After the metrics pusher exports to a real receiver, /debug/telemetry's metrics entry
    counts the data points sent, says when (just now) and shows no failure."""
    with otlp_receiver() as (endpoint, received):
        telemetry = obs.setup(
            service_name="dbg",
            handle_signals=False,
            environ={},
            otlp_endpoint=endpoint,
            traces_exporter="none",
            logs_exporter="none",
        )
        obs.counter("dbg.pushed", "what the test pushes").inc()
        assert telemetry.force_flush(5).ok
        assert received.wait_for(lambda r: bool(r.metrics()))
        with _served(telemetry) as server:
            report = orjson.loads(_get(server, "/debug/telemetry")[2])
    pushed = report["metrics"]
    assert (pushed["exporter"], pushed["queued"]) == ("otlp", None)
    assert pushed["exported"] >= 1
    assert 0 <= _seconds_ago(pushed["last_exported_at"]) < 60
    assert (pushed["failed"], pushed["failed_calls"], pushed["last_error"]) == (0, 0, None)


def test_telemetry_reports_failed_metric_pushes() -> None:
    """A metrics pusher aimed at a closed port shows a failed call, its time and the kind of
    failure (no message, no URL)."""
    telemetry = obs.setup(
        service_name="dbg",
        handle_signals=False,
        environ={},
        otlp_metrics_endpoint=f"http://127.0.0.1:{closed_port()}/v1/metrics?token={CANARY}",
        otlp_timeout=0.5,
        traces_exporter="none",
        logs_exporter="none",
    )
    assert not telemetry.force_flush(5).ok
    with _served(telemetry) as server:
        body = _get(server, "/debug/telemetry")[2]
    failed = orjson.loads(body)["metrics"]
    assert CANARY.encode() not in body
    assert failed["failed_calls"] >= 1
    assert failed["exported"] == 0
    assert 0 <= _seconds_ago(failed["last_failed_at"]) < 60
    assert failed["last_error"]["kind"] == "the exporter returned FAILURE"


def test_metrics_without_a_push_exporter_are_pull_only() -> None:
    """With no metrics exporter (only /metrics), the metrics entry says 'pull only' where
    the other signals give a queue depth."""
    settings = Settings.from_env({"OTEL_METRICS_EXPORTER": "none"})
    assert debug.telemetry(settings)["metrics"]["queued"] == "pull only"


class _LazyProxy:
    """Like Django's unconfigured ``settings``: reading ``__class__`` raises."""

    def __getattribute__(self, name: str) -> object:
        raise RuntimeError(f"not configured: {name}")


def test_task_listing_survives_objects_whose_class_cannot_be_read() -> None:
    """``/debug/tasks`` walks every tracked object: one that raises when asked for its
    ``__class__`` (Django's lazy settings before configuration) is passed over, and the
    running loop is still found."""
    from unified_obs.debug._stacks import running_loops

    proxy = [_LazyProxy()]  # in a list: tracked by the collector like a settings object

    async def probe() -> list[asyncio.AbstractEventLoop]:
        return running_loops()

    loop = asyncio.new_event_loop()
    try:
        found = loop.run_until_complete(probe())
    finally:
        loop.close()
    assert loop in found
    assert proxy
