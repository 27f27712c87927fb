"""HealthRegistry: check kinds, timeouts, caching, warm-ups and the probe state machine."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from unified_obs import ConfigError, health
from unified_obs.health import CheckResult, HealthRegistry
from unified_obs.testing import capture


@pytest.fixture
def registry() -> HealthRegistry:
    """A fresh registry (not the process-wide one)."""
    return HealthRegistry()


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event hanging checks wait on; set at teardown so their threads end."""
    event = threading.Event()
    yield event
    event.set()


def test_lifecycle_walk(registry: HealthRegistry) -> None:
    """Before start: startup/ready fail, live passes; running: all pass; draining: ready fails."""
    assert [registry.check_sync(k).ok for k in ("startup", "readiness", "liveness")] == [
        False,
        False,
        True,
    ]
    assert registry.check_sync("readiness").reason == "starting"
    registry.mark_started()
    assert all(registry.check_sync(k).ok for k in ("startup", "readiness", "liveness"))
    registry.start_draining()
    assert registry.draining
    ready = registry.check_sync("readiness")
    assert (ready.ok, ready.reason) == (False, "draining")
    assert registry.check_sync("liveness").ok
    assert registry.check_sync("startup").ok


def test_check_results_bool_and_check_result(registry: HealthRegistry) -> None:
    """True/None pass, False fails, a CheckResult is taken as is."""
    registry.mark_started()
    registry.add_check("yes", lambda: True)
    registry.add_check("none", lambda: None)
    registry.add_check("degraded", lambda: CheckResult("warn", "slow"))
    report = registry.check_sync("readiness")
    assert report.status == "warn"
    assert report.ok
    registry.add_check("no", lambda: False)
    report = registry.check_sync("readiness")
    assert report.status == "fail"
    assert report.checks["no"] == CheckResult("fail")
    assert report.checks["degraded"].detail == "slow"


_UNREADABLE: dict[str, object] = {
    "str-fail": "fail",
    "str-pass": "pass",
    "dict": {"status": "fail", "password": "hunter2"},
    "int": 1,
    "list": [True],
    "bogus-status": CheckResult("bogus"),  # type: ignore[arg-type]
    "unhashable-status": CheckResult(["pass"]),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("answer", list(_UNREADABLE.values()), ids=list(_UNREADABLE))
def test_unknown_check_result_fails_closed_with_one_warning(
    registry: HealthRegistry, answer: object, caplog: pytest.LogCaptureFixture
) -> None:
    """An answer that is not None, a bool or a CheckResult with a known status fails the
    check (503), and one warning names the check, however often it is run."""
    registry.mark_started()
    registry.add_check("orders-db", lambda: answer, success_ttl=0, failure_ttl=0)
    with caplog.at_level("WARNING", logger="unified_obs"):
        reports = [registry.check_sync("readiness") for _ in range(3)]
    assert [r.status for r in reports] == ["fail"] * 3
    assert reports[0].checks["orders-db"] == CheckResult("fail", "invalid result")
    warned = [r for r in caplog.records if "orders-db" in r.getMessage()]
    assert len(warned) == 1
    assert "hunter2" not in caplog.text


def test_raising_check_fails_without_leaking_message(registry: HealthRegistry) -> None:
    """An exception fails the check; only its type name is kept, never its text."""
    registry.mark_started()

    def broken() -> bool:
        raise ValueError("password=hunter2 host=db.internal")

    registry.add_check("db", broken)
    report = registry.check_sync("readiness")
    assert report.checks["db"] == CheckResult("fail", "error: ValueError")


def test_non_critical_failure_warns(registry: HealthRegistry) -> None:
    """A failing non-critical check makes the report "warn" (still ready)."""
    registry.mark_started()
    registry.add_check("cache", lambda: False, critical=False)
    report = registry.check_sync("readiness")
    assert (report.status, report.ok) == ("warn", True)


def test_hanging_sync_check_fails_at_timeout(
    registry: HealthRegistry, release: threading.Event
) -> None:
    """A sync check that never returns yields "fail" at its timeout; no second copy starts."""
    registry.mark_started()
    calls: list[int] = []

    def hang() -> bool:
        calls.append(1)
        return release.wait(30)

    registry.add_check("hang", hang, timeout=0.2, failure_ttl=0.0)
    start = time.monotonic()
    report = registry.check_sync("readiness")
    elapsed = time.monotonic() - start
    assert report.checks["hang"] == CheckResult("fail", "timeout")
    assert 0.19 <= elapsed < 0.5
    for _ in range(5):  # still hanging: answered at once, no new thread
        start = time.monotonic()
        assert not registry.check_sync("readiness").ok
        assert time.monotonic() - start < 0.05
    assert len(calls) == 1
    assert registry.check_sync("liveness").ok


def test_hanging_async_check_fails_at_timeout(registry: HealthRegistry) -> None:
    """An async check that hangs is cancelled at its timeout (on the loop)."""
    cancelled = threading.Event()

    async def hang() -> bool:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return True

    async def main() -> health.HealthReport:
        registry.mark_started()
        registry.add_check("hang", hang, timeout=0.2)
        return await registry.check_async("readiness")

    start = time.monotonic()
    report = asyncio.run(main())
    assert time.monotonic() - start < 0.6
    assert report.checks["hang"] == CheckResult("fail", "timeout")
    assert cancelled.is_set()


def test_sync_check_never_blocks_the_loop(registry: HealthRegistry) -> None:
    """While a slow sync check runs, the event loop keeps running other tasks."""

    def slow() -> bool:
        time.sleep(0.3)
        return True

    async def main() -> tuple[health.HealthReport, int]:
        registry.mark_started()
        registry.add_check("slow", slow, timeout=1.0)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        report = await registry.check_async("readiness")
        ticker.cancel()
        return report, ticks

    report, ticks = asyncio.run(main())
    assert report.ok
    assert ticks >= 10


def test_async_check_from_a_thread_runs_on_the_app_loop(registry: HealthRegistry) -> None:
    """check_sync (admin server thread) runs an async check on the loop given at start."""
    seen: list[asyncio.AbstractEventLoop] = []
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    async def on_loop() -> bool:
        seen.append(asyncio.get_running_loop())
        return True

    async def start() -> None:
        registry.mark_started()
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(start(), loop).result(5)
        registry.add_check("async", on_loop)
        assert registry.check_sync("readiness").ok
        assert seen == [loop]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_async_check_without_loop_runs_privately(registry: HealthRegistry) -> None:
    """With no application loop known, an async check runs in a private loop."""

    async def ok() -> CheckResult:
        await asyncio.sleep(0)
        return CheckResult("pass", "fine")

    registry.mark_started()
    registry.add_check("async", ok)
    assert registry.check_sync("readiness").checks["async"] == CheckResult("pass", "fine")


def test_ttl_caching(registry: HealthRegistry) -> None:
    """Results are reused within their TTL; a zero TTL runs the check every time."""
    registry.mark_started()
    counts = {"cached": 0, "fresh": 0, "failing": 0}

    def counter(name: str, result: bool) -> Callable[[], bool]:
        def check() -> bool:
            counts[name] += 1
            return result

        return check

    registry.add_check("cached", counter("cached", True), success_ttl=60)
    registry.add_check("fresh", counter("fresh", True), success_ttl=0)
    registry.add_check("failing", counter("failing", False), critical=False, failure_ttl=60)
    for _ in range(5):
        registry.check_sync("readiness")
    assert counts == {"cached": 1, "fresh": 5, "failing": 1}


def test_slow_answer_after_timeout_does_not_count(registry: HealthRegistry) -> None:
    """A check slower than its timeout stays failed even when it returns True later."""
    registry.mark_started()

    def late() -> bool:
        time.sleep(0.3)
        return True

    registry.add_check("late", late, timeout=0.1, success_ttl=0, failure_ttl=60)
    assert not registry.check_sync("readiness").ok
    time.sleep(0.4)
    assert not registry.check_sync("readiness").ok


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"kind": "sideways"}, "kind"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1.0}, "timeout"),
        ({"success_ttl": -1}, "success_ttl"),
        ({"failure_ttl": float("nan")}, "failure_ttl"),
    ],
)
def test_bad_options_raise(
    registry: HealthRegistry, options: dict[str, object], field: str
) -> None:
    """Bad check definitions raise ConfigError naming the field."""
    with pytest.raises(ConfigError) as raised:
        registry.add_check("x", lambda: True, **options)  # type: ignore[arg-type]
    assert raised.value.field == field


def test_duplicate_and_bad_names_raise(registry: HealthRegistry) -> None:
    """A name registered twice, an empty name or a non-callable raise ConfigError."""
    registry.add_check("db", lambda: True)
    with pytest.raises(ConfigError, match="db"):
        registry.add_check("db", lambda: True, kind="liveness")
    with pytest.raises(ConfigError):
        registry.add_check("", lambda: True)
    with pytest.raises(ConfigError):
        registry.add_check("x", "not callable")  # type: ignore[arg-type]
    registry.add_warmup("pool", lambda: None)
    with pytest.raises(ConfigError):
        registry.add_warmup("pool", lambda: None)


def test_decorator_form(registry: HealthRegistry) -> None:
    """@registry.check registers under the function name (or the given one)."""
    registry.mark_started()

    @registry.check(kind="liveness")
    def disk() -> bool:
        return False

    @registry.check("named")
    def other() -> bool:
        return True

    assert disk() is False
    assert set(registry.check_sync("liveness").checks) == {"disk"}
    assert set(registry.check_sync("readiness").checks) == {"named"}


def test_liveness_ignores_readiness_checks(registry: HealthRegistry) -> None:
    """A failing dependency (readiness) never fails liveness."""
    registry.mark_started()
    registry.add_check("db", lambda: False)
    assert not registry.check_sync("readiness").ok
    report = registry.check_sync("liveness")
    assert report.ok
    assert "db" not in report.checks


def test_warmups_gate_startup_and_readiness(
    registry: HealthRegistry, release: threading.Event
) -> None:
    """Startup (and so readiness) fail until every warm-up finished; then startup latches."""
    registry.add_warmup("cache", lambda: release.wait(10))
    registry.add_check("boot", lambda: True, kind="startup")
    registry.mark_started()
    assert not registry.check_sync("startup").ok
    assert registry.check_sync("readiness").reason == "starting"
    release.set()
    deadline = time.monotonic() + 5
    while not registry.check_sync("startup").ok and time.monotonic() < deadline:
        time.sleep(0.01)
    assert registry.started
    assert registry.check_sync("readiness").ok
    assert set(registry.check_sync("startup").checks) == set()  # latched: nothing re-run


def test_failed_warmup_keeps_startup_failing(registry: HealthRegistry) -> None:
    """A warm-up that raises keeps startup failing (the orchestrator restarts the pod)."""

    def broken() -> None:
        raise RuntimeError("no pool")

    registry.add_warmup("pool", broken)
    registry.mark_started()
    deadline = time.monotonic() + 5
    report = registry.check_sync("startup")
    while report.checks.get("warmup:pool") != CheckResult("fail", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
        report = registry.check_sync("startup")
    assert not report.ok


def test_async_warmup_runs_on_the_app_loop(registry: HealthRegistry) -> None:
    """An async warm-up runs as a task on the loop that called mark_started."""
    loops: list[asyncio.AbstractEventLoop] = []

    async def warm() -> None:
        loops.append(asyncio.get_running_loop())

    async def main() -> health.HealthReport:
        registry.add_warmup("warm", warm)
        registry.mark_started()
        for _ in range(100):
            report = await registry.check_async("readiness")
            if report.ok:
                return report
            await asyncio.sleep(0.01)
        return report

    assert asyncio.run(main()).ok
    assert len(loops) == 1


def test_blocked_event_loop_fails_liveness(
    registry: HealthRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the loop is known, liveness fails while it is blocked and recovers after."""
    monkeypatch.setattr(health, "LOOP_MAX_LAG", 0.2)
    monkeypatch.setattr(health, "LOOP_BEAT", 0.02)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    unblock = threading.Event()

    async def start() -> None:
        registry.mark_started()

    try:
        asyncio.run_coroutine_threadsafe(start(), loop).result(5)
        assert registry.check_sync("liveness").ok
        loop.call_soon_threadsafe(unblock.wait, 5)
        time.sleep(0.4)
        assert registry.check_sync("liveness").checks["event_loop"].status == "fail"
        unblock.set()
        time.sleep(0.1)
        assert registry.check_sync("liveness").ok
    finally:
        unblock.set()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_state_changes_logged_once() -> None:
    """A check going down logs one warning however often it is probed; recovery logs once."""
    state = {"up": False}
    with capture() as cap:
        registry = health.default_registry()
        registry.mark_started()
        registry.add_check("db", lambda: state["up"], failure_ttl=0, success_ttl=0)
        for _ in range(3):
            registry.check_sync("readiness")
        state["up"] = True
        for _ in range(3):
            registry.check_sync("readiness")
        events = [(r["event"], r.get("check")) for r in cap.logs if r.get("check") == "db"]
    assert events == [("health.check.failed", "db"), ("health.check.recovered", "db")]


def test_default_registry_is_tel_health_and_reset_in_place() -> None:
    """tel.health is the process-wide registry; testing.reset clears it in place."""
    with capture() as cap:
        assert cap.telemetry.health is health.default_registry()
        cap.telemetry.health.add_check("db", lambda: True)
        cap.telemetry.health.mark_started()
    registry = health.default_registry()
    assert registry is cap.telemetry.health
    assert not registry.started
    assert registry.check_sync("readiness").reason == "starting"
    registry.add_check("db", lambda: True)  # the name is free again


def test_internal_error_fails_the_probe_instead_of_raising(
    registry: HealthRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug inside the registry gives a failing report (503), never an exception."""

    def broken(kind: str) -> list[object]:
        raise RuntimeError("bug")

    monkeypatch.setattr(registry, "_of_kind", broken)
    registry.mark_started()
    report = registry.check_sync("liveness")
    assert (report.ok, report.reason) == (False, "error")
    report = asyncio.run(registry.check_async("liveness"))
    assert (report.ok, report.reason) == (False, "error")
    assert registry.check_sync("readiness").reason == "starting"  # startup cannot pass either
