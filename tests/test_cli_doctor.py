"""``unified-obs doctor`` as installed: the console script in a subprocess, against a real OTLP
receiver, a closed port and a port that never answers, with canary secrets in headers and
URLs that must never appear in any output."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tests.otlp_receiver import blackhole, closed_port, otlp_receiver
from tests.served import serving

CANARY = "c4n4ry-s3cr3t"
_OURS = ("OTEL_", "UNIFIED_OBS_", "PROMETHEUS_", "WEB_CONCURRENCY", "PYTHONUNBUFFERED")


def _doctor(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the installed ``unified-obs doctor`` with only ``env`` of our variables set."""
    script = shutil.which("unified-obs", path=str(Path(sys.executable).parent))
    assert script is not None, "the unified-obs console script is not installed"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    return subprocess.run(
        [script, "doctor", *args],
        env={**clean, "OTEL_SERVICE_NAME": "checkout", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _secret_env(endpoint: str) -> dict[str, str]:
    """Canaries in a header value, a URL's user-info and a URL's query string."""
    return {
        "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer {CANARY},x-api-key={CANARY}",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint.replace("://", f"://user:{CANARY}@")
        + "/v1/traces",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"{endpoint}/v1/metrics?token={CANARY}",
    }


def _checks(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in document["checks"]}


def test_reachable_receiver_passes_and_gets_the_headers() -> None:
    """Against a real receiver: exit 0, each OTLP signal checked by a real (empty) export
    request that carries the configured headers, and no canary in any output."""
    with otlp_receiver() as (endpoint, received):
        done = _doctor(
            "--json",
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_EXPORTER_OTLP_HEADERS=f"x-api-key={CANARY}",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=endpoint.replace("://", f"://user:{CANARY}@")
            + "/v1/traces",
        )
        assert received.wait_for(lambda r: all(r.requests.values()))
    assert done.returncode == 0, done.stdout + done.stderr
    assert CANARY not in done.stdout + done.stderr
    checks = _checks(json.loads(done.stdout))
    assert [checks[f"otlp_{s}"]["status"] for s in ("traces", "metrics", "logs")] == ["ok"] * 3
    assert all(h.get("x-api-key") == CANARY for h in received.headers)
    assert checks["fast_paths"]["summary"].startswith("lean_spans=")


def test_closed_port_fails_with_a_reason_and_masks_secrets() -> None:
    """Nothing listening: exit 1, 'connection refused' per signal, in text and JSON alike;
    header values, user-info and query strings stay masked."""
    endpoint = f"http://127.0.0.1:{closed_port()}"
    text = _doctor(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, **_secret_env(endpoint))
    as_json = _doctor("--json", OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, **_secret_env(endpoint))
    for done in (text, as_json):
        assert done.returncode == 1
        assert CANARY not in done.stdout + done.stderr
    assert "FAIL  otlp_traces" in text.stdout
    assert "connection refused" in text.stdout
    document = json.loads(as_json.stdout)
    assert document["status"] == "fail"
    assert _checks(document)["otlp_logs"]["status"] == "fail"
    shown = {entry["name"]: entry for entry in document["configuration"]}
    assert shown["otlp_headers"]["value"] == {"authorization": "***", "x-api-key": "***"}
    assert shown["otlp_traces_endpoint"]["value"].startswith("http://***@127.0.0.1:")
    assert shown["otlp_metrics_endpoint"]["value"].endswith("/v1/metrics?***")
    assert shown["otlp_headers"]["source"] == "environment"
    assert shown["traces_sampler"]["source"] == "default"


def test_a_silent_endpoint_fails_within_the_timeout() -> None:
    """A port that accepts and never answers: the check gives up after ``--timeout`` and
    says so (the subprocess's own timeout bounds the test)."""
    with blackhole() as port:
        done = _doctor(
            "--timeout", "0.3", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"http://127.0.0.1:{port}/v1/t"
        )
    assert done.returncode == 1
    assert "no answer within 0.3s" in done.stdout


@contextmanager
def _refusing_collector(status: int) -> Iterator[str]:
    """A real HTTP server on loopback that answers every POST with ``status``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as url:
        yield url


def test_refused_credentials_and_wrong_paths_get_their_hints() -> None:
    """A collector answering 401 points at the headers; one answering 404 at the rule that
    the generic endpoint is a base URL and a per-signal one a full URL."""
    with _refusing_collector(401) as denied, _refusing_collector(404) as missing:
        done = _doctor(
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{denied}/v1/traces",
            OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=missing,
        )
    assert done.returncode == 1
    assert "HTTP 401" in done.stdout
    assert "credentials refused: check OTEL_EXPORTER_OTLP_HEADERS" in done.stdout
    assert "HTTP 404" in done.stdout
    assert "OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT a full one" in done.stdout


def test_tls_spoken_to_a_plain_server_gets_the_tls_hint() -> None:
    """``https://`` towards a receiver that speaks plain HTTP fails the handshake and
    suggests ``http://``; many workers without a multiprocess directory is worth a note
    (the known pre-fork servers share one by themselves), not a warning."""
    with otlp_receiver() as (endpoint, _):
        secure = endpoint.replace("http://", "https://")
        done = _doctor(
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{secure}/v1/traces", WEB_CONCURRENCY="4"
        )
    assert done.returncode == 1
    assert "TLS handshake failed" in done.stdout
    assert "the endpoint may speak plain HTTP: try http://" in done.stdout
    assert "multiprocess: 4 workers declared, PROMETHEUS_MULTIPROC_DIR unset" in done.stdout
    assert "WARN  multiprocess" not in done.stdout


def test_invalid_environment_value_fails_without_echoing_credentials() -> None:
    """An environment value setup() would ignore is a failed check; a malformed URL's
    user-info is masked in that message too (it used to be echoed verbatim)."""
    done = _doctor(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"htp://user:{CANARY}@collector:4318",
        UNIFIED_OBS_GRACE_PERIOD="10",
    )
    assert done.returncode == 1
    assert CANARY not in done.stdout + done.stderr
    assert "ignoring OTEL_EXPORTER_OTLP_ENDPOINT='htp://[REDACTED]@collector:4318'" in done.stdout
    assert "FAIL  grace_period" in done.stdout


def test_strict_fails_on_warnings() -> None:
    """Warnings alone (no service name, no exporter) exit 0, and 1 with ``--strict``."""
    relaxed = _doctor(OTEL_SERVICE_NAME="")
    strict = _doctor("--strict", OTEL_SERVICE_NAME="")
    assert relaxed.returncode == 0, relaxed.stdout
    assert "WARN  service_name" in relaxed.stdout
    assert strict.returncode == 1


def test_k8s_snippet_follows_the_shutdown_settings() -> None:
    """``--k8s`` prints valid YAML whose grace period is ``grace_period`` and whose readiness
    probe sees the draining 503 within ``drain_delay``."""
    done = _doctor(
        "--k8s",
        "--port",
        "9464",
        UNIFIED_OBS_GRACE_PERIOD="45",
        UNIFIED_OBS_DRAIN_DELAY="3",
        UNIFIED_OBS_DRAIN_TIMEOUT="20",
    )
    assert done.returncode == 0, done.stderr
    pod = yaml.safe_load(done.stdout)["spec"]
    assert pod["terminationGracePeriodSeconds"] == 45
    container = pod["containers"][0]
    assert container["name"] == "checkout"
    ready = container["readinessProbe"]
    assert ready["httpGet"] == {"path": "/readyz", "port": 9464}
    assert ready["periodSeconds"] * ready["failureThreshold"] <= 3
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["startupProbe"]["httpGet"]["path"] == "/startupz"


def test_k8s_snippet_says_serve_admin_needs_a_reachable_host() -> None:
    """``--k8s`` warns that ``serve_admin``'s loopback default is out of the kubelet's reach,
    since probes against the pod IP fail on 127.0.0.1 (issue #30)."""
    done = _doctor("--k8s", "--port", "9464")
    assert done.returncode == 0, done.stderr
    comments = [line for line in done.stdout.splitlines() if line.startswith("#")]
    assert any('host="0.0.0.0"' in line and "127.0.0.1" in line for line in comments)


@contextmanager
def _silent_counting_listener() -> Iterator[tuple[int, list[int]]]:
    """A loopback port that accepts and never answers; yields the port and a one-item list
    holding the most connections that were open at the same time."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    peak, open_now, lock, stop = [0], [0], threading.Lock(), threading.Event()

    def hold(conn: socket.socket) -> None:
        with conn:
            with lock:
                open_now[0] += 1
                peak[0] = max(peak[0], open_now[0])
            conn.settimeout(10)
            with contextlib.suppress(OSError):
                while conn.recv(65536):  # until the client gives up and closes
                    pass
            with lock:
                open_now[0] -= 1

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn = listener.accept()[0]
                threading.Thread(target=hold, args=(conn,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield int(listener.getsockname()[1]), peak
    finally:
        stop.set()
        acceptor.join(5)
        listener.close()


def test_signals_are_checked_at_once() -> None:
    """The three signals' checks run together: a collector that never answers sees all three
    requests open at the same time (one timeout for the whole check, not three)."""
    with _silent_counting_listener() as (port, peak):
        done = _doctor("--timeout", "1", OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}")
    assert done.returncode == 1
    assert done.stdout.count("no answer within 1s") == 3
    assert peak[0] == 3
