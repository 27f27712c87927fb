"""endpoints.render and probe: status codes, tiny bodies, details only when asked, HEAD."""

from __future__ import annotations

import asyncio
from types import MappingProxyType

import orjson
import pytest

from unified_obs import endpoints
from unified_obs.health import CheckResult, HealthRegistry, HealthReport


def _report(status: str, **checks: CheckResult) -> HealthReport:
    return HealthReport("readiness", status, MappingProxyType(checks))  # type: ignore[arg-type]


@pytest.mark.parametrize(("status", "code"), [("pass", 200), ("warn", 200), ("fail", 503)])
def test_status_codes(status: str, code: int) -> None:
    """pass and warn are 200 (inside the kubelet's [200, 400) success range); fail is 503."""
    got, headers, body = endpoints.render(_report(status))
    assert got == code
    assert orjson.loads(body) == {"status": status}
    assert ("content-type", "application/health+json") in headers
    assert ("cache-control", "no-store") in headers


def test_default_body_is_small_and_leaks_nothing() -> None:
    """Without details: no check names, details, versions or hosts; well under 256 bytes."""
    report = _report("fail", db=CheckResult("fail", "db.internal:5432 refused"))
    _, _, body = endpoints.render(report)
    assert body == b'{"status":"fail"}'
    assert len(body) <= 256


def test_details_when_enabled() -> None:
    """details=True lists each check's status and short detail, and the gate's reason."""
    report = HealthReport(
        "readiness",
        "fail",
        MappingProxyType({"db": CheckResult("fail", "timeout"), "cache": CheckResult("pass")}),
        "draining",
    )
    _, _, body = endpoints.render(report, details=True)
    assert orjson.loads(body) == {
        "status": "fail",
        "reason": "draining",
        "checks": {"cache": {"status": "pass"}, "db": {"status": "fail", "detail": "timeout"}},
    }


def test_long_details_are_cut() -> None:
    """A check returning a huge detail cannot blow the response up."""
    _, _, body = endpoints.render(
        _report("warn", big=CheckResult("warn", "x" * 10_000)), details=True
    )
    assert len(body) < 300


def test_head_keeps_headers_drops_body() -> None:
    """HEAD: same status and content-length as GET, empty body."""
    get = endpoints.render(_report("pass"))
    head = endpoints.render(_report("pass"), head=True)
    assert head[0] == get[0]
    assert head[1] == get[1]
    assert head[2] == b""
    assert dict(get[1])["content-length"] == str(len(get[2]))


def test_probe_paths() -> None:
    """The four probe paths and their kinds; anything else is not a probe."""
    assert dict(endpoints.PROBE_PATHS) == {
        "/livez": "liveness",
        "/readyz": "readiness",
        "/startupz": "startup",
        "/healthz": "liveness",
    }
    registry = HealthRegistry()
    assert endpoints.probe(registry, "/metrics") is None
    assert endpoints.probe(registry, "/readyz/") is None


def test_probe_answers_from_registry() -> None:
    """probe() and probe_async() answer the same thing for the same state."""
    registry = HealthRegistry()
    before = endpoints.probe(registry, "/readyz")
    assert before is not None
    assert before[0] == 503
    registry.mark_started()
    sync = endpoints.probe(registry, "/readyz", head=True)
    async_ = asyncio.run(endpoints.probe_async(registry, "/readyz", head=True))
    assert sync == async_
    assert sync is not None
    assert sync[0] == 200
    assert asyncio.run(endpoints.probe_async(registry, "/nope")) is None
