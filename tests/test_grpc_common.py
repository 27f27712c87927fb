"""Pure helpers of the gRPC interceptors: names, peers, error types, propagation, options."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import grpc
import pytest
from opentelemetry import trace

from unified_obs.grpc import _common, client_interceptor, server_interceptor
from unified_obs.grpc._observer import Call, Observer
from unified_obs.grpc.aio_client import _now
from unified_obs.grpc.client import finish_from
from unified_obs.testing import capture


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        ("ipv4:10.0.0.1:5000", ("10.0.0.1", 5000)),
        ("ipv6:[::1]:5000", ("::1", 5000)),
        ("ipv6:[2001:db8::7]:443", ("2001:db8::7", 443)),
        ("unix:/run/app.sock", ("/run/app.sock", None)),
        ("ipv4:10.0.0.1", ("10.0.0.1", None)),
        ("", (None, None)),
        (None, (None, None)),
    ],
)
def test_parse_peer(peer: str | None, expected: tuple[str | None, int | None]) -> None:
    """gRPC peer strings become ``network.peer.address`` / ``network.peer.port``."""
    assert _common.parse_peer(peer) == expected
    assert _common.parse_peer(peer) == expected  # the cached answer is the same


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("localhost:50051", ("localhost", 50051)),
        ("[::1]:50051", ("::1", 50051)),
        ("dns:///orders.internal:443", ("orders.internal", 443)),
        ("dns://1.2.3.4/grpc.io:50051", ("grpc.io", 50051)),
        ("dns:orders.internal:8443", ("orders.internal", 8443)),
        ("orders.internal", ("orders.internal", 443)),
        ("::1", ("::1", 443)),
        ("unix:///run/x.sock", ("/run/x.sock", None)),
        ("unix:/run/x.sock", ("/run/x.sock", None)),
        ("unix:relative.sock", ("relative.sock", None)),
        ("unix-abstract:grpc-abstract", ("grpc-abstract", None)),
        ("ipv4:10.0.0.1:50051,10.0.0.2:50051", ("10.0.0.1", 50051)),
        ("ipv6:[::1]:50051", ("::1", 50051)),
    ],
)
def test_parse_target(target: str, expected: tuple[str | None, int | None]) -> None:
    """Channel targets, in every form gRPC's naming allows, become ``server.address`` /
    ``server.port``: a DNS server authority is skipped, a name without a port is 443 (where
    gRPC connects), a unix socket is its path without a port."""
    assert _common.parse_target(target) == expected


def test_full_method_and_options() -> None:
    """``/pkg.S/M`` (str or bytes) -> ``pkg.S/M``; exclusions match the service part."""
    assert _common.full_method(b"/pkg.Svc/Do") == "pkg.Svc/Do"
    assert _common.full_method("pkg.Svc/Do") == "pkg.Svc/Do"
    options = _common.make_options(None, True, "host:1")
    assert not options.traced("grpc.health.v1.Health/Check")
    assert options.traced("pkg.Svc/Do")
    assert (options.server_address, options.server_port) == ("host", 1)
    assert _common.make_options(["pkg.Svc"], False).traced("grpc.health.v1.Health/Watch")
    assert server_interceptor(log_calls=False).options.log_calls is False
    assert client_interceptor(target="h:2").options.server_port == 2


class _Custom(Exception):
    pass


def test_error_type() -> None:
    """A crash names the exception class (module-qualified unless builtin); an abort or a
    returned status names the code; OK has none."""
    unknown, not_found, ok = grpc.StatusCode.UNKNOWN, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.OK
    assert _common.error_type(unknown, "UNKNOWN", ValueError("x"), aborted=False) == "ValueError"
    assert _common.error_type(unknown, "UNKNOWN", _Custom(), False) == f"{__name__}._Custom"
    assert _common.error_type(not_found, "NOT_FOUND", Exception(), aborted=True) == "NOT_FOUND"
    assert _common.error_type(ok, "OK", None, aborted=False) is None


def test_extract_ignores_unrelated_and_unreadable_metadata() -> None:
    """No trace keys: no parsing at all; a carrier that cannot be read: no parent, no error."""
    assert _common.extract(None) is None
    assert _common.extract([("user-agent", "x")]) is None
    assert _common.extract([("traceparent",)]) is None  # malformed pair: ignored


def test_inject_adds_traceparent_for_a_recording_span() -> None:
    """The client metadata keeps its own pairs and gains ``traceparent``."""
    with capture(handle_signals=False):
        span = trace.get_tracer("t").start_span("s")
        metadata = _common.inject((("k", "v"),), span)
        span.end()
    assert metadata[0] == ("k", "v")
    assert [key for key, _ in metadata[1:]] == ["traceparent"]


def test_finish_from_tolerates_odd_codes_and_watch_failures() -> None:
    """A non-StatusCode code is recorded as UNKNOWN; a call object we cannot watch is
    recorded at once (with a warning), never raised."""
    with capture(handle_signals=False) as cap:
        observer = Observer("client", _common.Options(log_calls=False))
        finish_from(observer.start("a.B/C", None), None, "weird", b"bytes")
        interceptor = client_interceptor()
        interceptor._watch(observer.start("a.B/D", None), object(), streaming=True)
        spans = {s.name: dict(s.attributes or {}) for s in cap.spans}
        warnings = [r for r in cap.logs if "could not watch" in str(r["event"])]
    assert spans["a.B/C"]["rpc.response.status_code"] == "UNKNOWN"
    assert spans["a.B/D"]["rpc.response.status_code"] == "UNKNOWN"
    assert [w["level"] for w in warnings] == ["warning"]


class _Pending:
    def __await__(self) -> Generator[Any, None, int]:
        yield None
        return 1


async def _done() -> int:
    return 7


def test_now_reads_finished_awaitables_only() -> None:
    """``_now`` returns a finished awaitable's value and refuses one that would suspend."""
    assert _now(_done()) == 7
    with pytest.raises(LookupError):
        _now(_Pending())


def test_call_finishes_once() -> None:
    """A second ``finish`` (a racing termination callback) records nothing more."""
    with capture(handle_signals=False) as cap:
        call: Call = Observer("server", _common.Options(log_calls=False)).start("a.B/C", None)
        call.finish(grpc.StatusCode.OK)
        call.finish(grpc.StatusCode.INTERNAL)
    assert [dict(s.attributes or {})["rpc.response.status_code"] for s in cap.spans] == ["OK"]


class _SlottedPropagator:
    """A propagator that cannot be weakly referenced."""

    __slots__ = ()
    fields = frozenset({"traceparent"})

    def extract(self, carrier: Any, context: Any = None, getter: Any = None) -> Any:
        from opentelemetry import context as otel_context

        return otel_context.set_value("seen", True)


def test_extract_works_with_propagators_that_cannot_be_weakly_referenced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The key cache is an optimisation only: any propagator object still extracts."""
    from opentelemetry import propagate

    monkeypatch.setattr(propagate, "get_global_textmap", lambda: _SlottedPropagator())
    monkeypatch.setattr(propagate, "extract", _SlottedPropagator().extract)
    extracted = _common.extract([("traceparent", "x")])
    assert extracted is not None
    assert extracted.get("seen") is True


@pytest.mark.parametrize(
    "options", [{"log_calls": "sometimes"}, {"log_calls": 1}, {"excluded_services": "a.B"}]
)
def test_bad_interceptor_options_fail_at_construction(options: dict[str, Any]) -> None:
    """A bad option is a ``ConfigError`` naming it, raised when the interceptor is made."""
    from unified_obs.errors import ConfigError

    for factory in (server_interceptor, client_interceptor):
        with pytest.raises(ConfigError, match=next(iter(options))):
            factory(**options)


@pytest.mark.parametrize("missing", ["grpc", "grpc_health"])
def test_missing_grpc_extra_names_the_pip_install_line(missing: str) -> None:
    """Without grpcio or grpcio-health-checking, ``import unified_obs.grpc`` raises
    ImportError naming the extra."""
    import subprocess
    import sys

    code = (
        f"import sys; sys.modules[{missing!r}] = None\n"
        "try:\n    import unified_obs.grpc\nexcept ImportError as exc:\n    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install 'unified-obs[grpc]'" in done.stdout
