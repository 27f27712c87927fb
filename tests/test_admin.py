"""The stand-alone admin server: probes over real HTTP, HEAD, 404, loopback, /metrics."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator

import orjson
import pytest

from unified_obs import ConfigError, admin, health
from unified_obs._semconv import library_version
from unified_obs.testing import capture


def _get(
    server: admin.AdminServer, path: str, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.fixture
def server() -> Iterator[admin.AdminServer]:
    """An admin server on a free loopback port for the process-wide registry."""
    running = admin.serve()
    yield running
    running.close()


def test_loopback_by_default(server: admin.AdminServer) -> None:
    """Bound to 127.0.0.1 on a port chosen at run time."""
    assert server.host == "127.0.0.1"
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"


def test_probe_walk_over_http(server: admin.AdminServer) -> None:
    """Starting: startup/ready 503, live 200; started: all 200; draining: ready 503, live 200."""
    registry = health.default_registry()
    codes = {path: _get(server, path)[0] for path in ("/startupz", "/readyz", "/livez", "/healthz")}
    assert codes == {"/startupz": 503, "/readyz": 503, "/livez": 200, "/healthz": 200}
    registry.mark_started()
    assert all(_get(server, p)[0] == 200 for p in ("/startupz", "/readyz", "/livez"))
    registry.start_draining()
    assert _get(server, "/readyz")[0] == 503
    assert _get(server, "/livez")[0] == 200


def test_head_and_query_string(server: admin.AdminServer) -> None:
    """HEAD answers headers only; a query string does not change the route."""
    health.default_registry().mark_started()
    status, headers, body = _get(server, "/readyz?verbose=1", "HEAD")
    assert (status, body) == (200, b"")
    assert headers["content-type"] == "application/health+json"
    assert headers["content-length"] == str(len(b'{"status":"pass"}'))
    assert _get(server, "/readyz?verbose")[2] == b'{"status":"pass"}'  # details are off


def test_unknown_path_is_404(server: admin.AdminServer) -> None:
    """Only the probe paths and /metrics exist."""
    status, _, body = _get(server, "/admin/secrets")
    assert (status, body) == (404, b"not found\n")


def test_server_header_leaks_no_versions(server: admin.AdminServer) -> None:
    """The Server header names neither Python nor its version."""
    _, headers, _ = _get(server, "/livez")
    assert "python" not in headers.get("server", "").lower()


def test_hanging_readiness_check_keeps_liveness_fast(server: admin.AdminServer) -> None:
    """A hanging readiness check: /readyz 503 within its timeout, /livez 200 at once."""
    registry = health.default_registry()
    registry.mark_started()
    release = threading.Event()
    registry.add_check("db", lambda: release.wait(30), timeout=0.3)
    try:
        start = time.monotonic()
        assert _get(server, "/readyz")[0] == 503
        assert time.monotonic() - start < 0.6
        start = time.monotonic()
        assert _get(server, "/livez")[0] == 200
        assert time.monotonic() - start < 0.1
    finally:
        release.set()


def test_details_enabled_by_setting() -> None:
    """tel.serve_admin follows the health_details setting."""
    with capture(health_details=True) as cap:
        cap.telemetry.health.add_check("db", lambda: False)
        server = cap.telemetry.serve_admin()
        try:
            status, _, body = _get(server, "/startupz")
            assert status == 503
            assert orjson.loads(body) == {"status": "fail", "reason": "starting", "checks": {}}
            cap.telemetry.health.mark_started()
            body = _get(server, "/readyz")[2]
            assert orjson.loads(body)["checks"] == {"db": {"status": "fail"}}
        finally:
            server.close()


def test_close_releases_the_port() -> None:
    """After close() the port can be bound again; close() twice is harmless."""
    server = admin.serve()
    port = server.port
    server.close()
    server.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_reset_closes_every_server() -> None:
    """admin.close_all (run by testing.reset) stops servers the test forgot."""
    server = admin.serve()
    admin.close_all()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_metrics_endpoint_and_check_metrics(server: admin.AdminServer) -> None:
    """/metrics renders the registry, including each check's status and duration."""
    registry = health.default_registry()
    registry.mark_started()
    registry.add_check("db", lambda: False)
    registry.check_sync("readiness")
    status, headers, body = _get(server, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    text = body.decode()
    scope = f'otel_scope_name="unified_obs",otel_scope_version="{library_version()}"'
    labels = f'check="db",kind="readiness",{scope}'
    assert f"unified_obs_health_check_status{{{labels}}} 0.0" in text
    assert f"unified_obs_health_check_duration_seconds_count{{{labels}}} 1.0" in text


def test_port_in_use_is_a_config_error(server: admin.AdminServer) -> None:
    """Binding a port that is taken raises ConfigError naming the port."""
    with pytest.raises(ConfigError, match=f"port={server.port}"):
        admin.serve(server.port)


def test_keep_alive_probes_do_not_stall(server: admin.AdminServer) -> None:
    """On one kept-alive connection each answer leaves in one write: no 40 ms
    Nagle/delayed-ACK stall per probe (20 probes take well under 0.4 s)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        start = time.monotonic()
        for _ in range(20):
            conn.request("GET", "/livez")
            response = conn.getresponse()
            assert response.status == 200
            response.read()
        assert time.monotonic() - start < 0.4
    finally:
        conn.close()
