"""``unified-obs doctor`` against OTLP/gRPC endpoints, as installed (the console script in a
subprocess): a real grpcio OTLP receiver on a loopback port chosen at run time gets the
handshake and an empty export with the configured metadata; a closed port, a gRPC server
that is no OTLP receiver, and TLS spoken to a plaintext receiver each fail with their
hint; without grpcio only the TCP connection is checked, and the check says so.  No canary
secret appears in any output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import trustme
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as logs_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as metrics_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as traces
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as traces_grpc

from tests.otlp_receiver import closed_port
from tests.test_cli_doctor import CANARY, _checks, _doctor

_SIGNALS = ("traces", "metrics", "logs")


class _Receiver:
    """The three OTLP services; each export's metadata is kept."""

    def __init__(self) -> None:
        self.metadata: list[dict[str, str]] = []

    def _note(self, context: Any) -> None:
        self.metadata.append(dict(context.invocation_metadata()))

    def traces(self, request: Any, context: Any) -> Any:
        self._note(context)
        return traces.ExportTraceServiceResponse()

    def metrics(self, request: Any, context: Any) -> Any:
        self._note(context)
        return metrics.ExportMetricsServiceResponse()

    def logs(self, request: Any, context: Any) -> Any:
        self._note(context)
        return logs.ExportLogsServiceResponse()


def _servicers(receiver: _Receiver) -> list[tuple[Any, Any]]:
    """(servicer, add-to-server function) of each OTLP service, answering through ``receiver``."""

    class Traces(traces_grpc.TraceServiceServicer):
        Export = staticmethod(receiver.traces)

    class Metrics(metrics_grpc.MetricsServiceServicer):
        Export = staticmethod(receiver.metrics)

    class Logs(logs_grpc.LogsServiceServicer):
        Export = staticmethod(receiver.logs)

    return [
        (Traces(), traces_grpc.add_TraceServiceServicer_to_server),
        (Metrics(), metrics_grpc.add_MetricsServiceServicer_to_server),
        (Logs(), logs_grpc.add_LogsServiceServicer_to_server),
    ]


@contextmanager
def _grpc_receiver(
    otlp: bool = True, tls: trustme.LeafCert | None = None
) -> Iterator[tuple[int, _Receiver]]:
    """A grpcio server on a free loopback port: the OTLP services, or none; plaintext, or
    TLS with the ``tls`` certificate."""
    receiver = _Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    for servicer, add in _servicers(receiver) if otlp else []:
        add(servicer, server)
    if tls is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        chain = b"".join(pem.bytes() for pem in tls.cert_chain_pems)
        key = tls.private_key_pem.bytes()
        port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, chain)]))
    server.start()
    try:
        yield port, receiver
    finally:
        server.stop(grace=None)


def _grpc_env(endpoint: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer {CANARY},x-api-key={CANARY}",
    }


def test_a_grpc_receiver_gets_the_handshake_and_the_headers() -> None:
    """Against a real OTLP/gRPC receiver: exit 0, each signal checked by a handshake and an
    empty export whose metadata carries the configured headers (keys in lower case)."""
    with _grpc_receiver() as (port, receiver):
        done = _doctor("--json", **_grpc_env(f"http://127.0.0.1:{port}"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert CANARY not in done.stdout + done.stderr
    checks = _checks(json.loads(done.stdout))
    for signal in _SIGNALS:
        check = checks[f"otlp_{signal}"]
        assert check["status"] == "ok"
        assert "grpc (plaintext)" in check["summary"]
        assert "gRPC handshake and empty export in" in check["summary"]
    assert len(receiver.metadata) == 3
    assert all(m["authorization"] == f"Bearer {CANARY}" for m in receiver.metadata)


def test_a_closed_grpc_port_is_refused() -> None:
    """Nothing listening on the gRPC endpoint: exit 1, 'connection refused' per signal."""
    done = _doctor("--json", **_grpc_env(f"http://127.0.0.1:{closed_port()}"))
    assert done.returncode == 1
    assert CANARY not in done.stdout + done.stderr
    checks = _checks(json.loads(done.stdout))
    for signal in _SIGNALS:
        assert checks[f"otlp_{signal}"]["status"] == "fail"
        assert checks[f"otlp_{signal}"]["summary"].endswith(
            "connection refused (nothing listens there)"
        )


def test_a_grpc_server_without_otlp_services_is_not_a_receiver() -> None:
    """A gRPC server that serves no OTLP service answers UNIMPLEMENTED: the check fails and
    says it is no OTLP receiver of the signal."""
    with _grpc_receiver(otlp=False) as (port, _):
        done = _doctor(
            OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="grpc",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"http://127.0.0.1:{port}",
        )
    assert done.returncode == 1
    assert "gRPC status UNIMPLEMENTED" in done.stdout
    assert "no OTLP receiver of this signal" in done.stdout


def test_tls_towards_a_plaintext_grpc_receiver_gets_the_plaintext_hint() -> None:
    """``https://`` (TLS) towards a receiver speaking plaintext gRPC: no handshake within
    ``--timeout``, and the hint says the collector speaks plaintext."""
    with _grpc_receiver() as (port, receiver):
        done = _doctor(
            "--timeout",
            "1",
            OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="grpc",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"https://user:{CANARY}@127.0.0.1:{port}",
        )
    assert done.returncode == 1
    assert CANARY not in done.stdout + done.stderr
    assert "FAIL  otlp_traces: grpc (TLS) https://***@127.0.0.1:" in done.stdout
    assert "no gRPC handshake within 1s" in done.stdout
    assert "the collector speaks plaintext gRPC: use an http:// endpoint" in done.stdout
    assert receiver.metadata == []  # the plaintext retry only connects: it sends nothing


def test_insecure_false_makes_http_speak_tls_as_the_exporter_does() -> None:
    """``OTEL_EXPORTER_OTLP_INSECURE=false`` turns TLS on for an ``http://`` endpoint, as the
    OTLP/gRPC exporter reads it: the check speaks TLS, and a plaintext receiver fails."""
    with _grpc_receiver() as (port, _):
        done = _doctor(
            "--timeout",
            "1",
            OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="grpc",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"http://127.0.0.1:{port}",
            OTEL_EXPORTER_OTLP_INSECURE="false",
        )
    assert done.returncode == 1
    assert "FAIL  otlp_traces: grpc (TLS) http://127.0.0.1:" in done.stdout
    assert (
        "the collector speaks plaintext gRPC: use OTEL_EXPORTER_OTLP_INSECURE=true" in done.stdout
    )


def test_without_grpcio_only_tcp_is_checked(tmp_path: Path) -> None:
    """With grpcio not importable (a ``grpc`` package that raises ImportError shadows it),
    the check makes the TCP connection only and says how to get the full check."""
    shadow = tmp_path / "grpc"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('no grpcio here')\n")
    with _grpc_receiver() as (port, receiver):
        done = _doctor(
            OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="grpc",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"http://127.0.0.1:{port}",
            PYTHONPATH=str(tmp_path),
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok    otlp_traces: grpc (plaintext) http://127.0.0.1:" in done.stdout
    assert "grpcio is not installed (pip install 'unified-obs[grpc]'): TCP only" in done.stdout
    assert receiver.metadata == []


def test_a_tls_receiver_trusted_through_the_certificate_variable(tmp_path: Path) -> None:
    """A TLS receiver whose CA is named by ``OTEL_EXPORTER_OTLP_CERTIFICATE``: with
    ``https://`` the handshake and the export succeed; with ``http://`` (plaintext) there
    is no handshake, and the hint says the collector speaks TLS."""
    authority = trustme.CA()
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    with _grpc_receiver(tls=authority.issue_cert("127.0.0.1")) as (port, receiver):
        secure = _doctor(
            OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="grpc",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"https://127.0.0.1:{port}",
            OTEL_EXPORTER_OTLP_CERTIFICATE=str(bundle),
            OTEL_EXPORTER_OTLP_TRACES_HEADERS=f"x-api-key={CANARY}",
        )
        plain = _doctor(
            "--timeout",
            "1",
            OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="grpc",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"http://127.0.0.1:{port}",
            OTEL_EXPORTER_OTLP_CERTIFICATE=str(bundle),
        )
    assert secure.returncode == 0, secure.stdout + secure.stderr
    assert "ok    otlp_traces: grpc (TLS) https://127.0.0.1:" in secure.stdout
    assert [m["x-api-key"] for m in receiver.metadata] == [CANARY]
    assert CANARY not in secure.stdout + secure.stderr
    assert plain.returncode == 1
    assert "FAIL  otlp_traces: grpc (plaintext) http://127.0.0.1:" in plain.stdout
    assert "the collector speaks TLS: use an https:// endpoint" in plain.stdout
