"""The graceful sequence (in process) and SIGTERM handling (in subprocesses)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType, MappingProxyType

import pytest

import unified_obs as obs
from tests.otlp_receiver import blackhole, closed_port
from unified_obs import health, lifecycle
from unified_obs.lifecycle import ShutdownResult, inflight


def _closer(calls: list[float]) -> Callable[[float], ShutdownResult]:
    def close(timeout: float) -> ShutdownResult:
        calls.append(timeout)
        return ShutdownResult(MappingProxyType({"traces": "ok"}))

    return close


def test_sequence_drains_then_waits_for_inflight_then_closes() -> None:
    """Readiness fails at once; close runs only after the last in-flight request ends."""
    registry, closed = health.default_registry(), list[float]()
    sequence = lifecycle.graceful_sequence(
        begin_drain=registry.start_draining,
        close=_closer(closed),
        drain_delay=5.0,  # no signal came: the delay is skipped
        drain_timeout=5.0,
        shutdown_timeout=2.0,
    )
    inflight.enter()
    results: list[ShutdownResult] = []
    runner = threading.Thread(target=lambda: results.append(sequence()))
    runner.start()
    deadline = time.monotonic() + 2
    while not registry.draining and time.monotonic() < deadline:
        time.sleep(0.005)
    assert registry.draining
    time.sleep(0.1)
    assert closed == []  # still waiting for the request
    inflight.exit()
    runner.join(5)
    assert len(closed) == 1
    assert closed == [2.0]  # the flush gets shutdown_timeout
    assert dict(results[0].outcomes) == {"inflight": "ok", "traces": "ok"}
    assert results[0].elapsed < 1.0


def test_sequence_gives_up_on_inflight_at_drain_timeout() -> None:
    """A request that never ends costs drain_timeout, then the flush still runs."""
    closed: list[float] = []
    sequence = lifecycle.graceful_sequence(
        begin_drain=lambda: None,
        close=_closer(closed),
        drain_delay=0.0,
        drain_timeout=0.2,
        shutdown_timeout=1.0,
    )
    inflight.enter()
    start = time.monotonic()
    result = sequence()
    assert 0.2 <= time.monotonic() - start < 0.6
    assert result.outcomes["inflight"] == "timeout"
    assert 0.9 <= closed[0] <= 1.0


def test_run_shutdown_sequence_runs_once() -> None:
    """Concurrent callers (signal path, lifespan, atexit) share one run and one result."""
    assert lifecycle.run_shutdown_sequence() is None  # nothing registered
    runs: list[int] = []

    def sequence() -> ShutdownResult:
        runs.append(1)
        time.sleep(0.1)
        return ShutdownResult(MappingProxyType({"x": "ok"}))

    lifecycle.set_shutdown_sequence(sequence)
    results: list[ShutdownResult | None] = []
    threads = [
        threading.Thread(target=lambda: results.append(lifecycle.run_shutdown_sequence()))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert runs == [1]
    assert len(results) == 4
    assert all(result is results[0] for result in results)


def test_raising_sequence_is_contained() -> None:
    """A sequence that raises is reported, never raised into the caller."""

    def broken() -> ShutdownResult:
        raise RuntimeError("boom")

    lifecycle.set_shutdown_sequence(broken)
    result = lifecycle.run_shutdown_sequence()
    assert result is not None
    assert result.outcomes == {"sequence": "error"}


def test_setup_registers_the_sequence() -> None:
    """After setup(): readiness 503, hooks LIFO, then signals flushed; Telemetry shut down."""
    tel = obs.setup(environ={}, service_name="t", traces_exporter="none", logs_exporter="none")
    order: list[str] = []
    tel.on_shutdown(lambda: order.append("first registered"))
    tel.on_shutdown(lambda: order.append("last registered"))
    tel.health.mark_started()
    assert tel.health.check_sync("readiness").ok
    result = lifecycle.run_shutdown_sequence()
    assert result is not None
    assert result.outcomes["inflight"] == "ok"
    assert order == ["last registered", "first registered"]
    assert tel.is_shut_down
    assert tel.health.check_sync("readiness").reason == "draining"
    assert tel.health.check_sync("liveness").ok


@pytest.mark.parametrize("collector", ["closed", "blackhole"])
def test_sequence_bounded_with_broken_collector(collector: str) -> None:
    """Collector on a closed port or never answering: the sequence ends within its deadline."""
    with blackhole() as hole:
        port = closed_port() if collector == "closed" else hole
        tel = obs.setup(
            environ={},
            service_name="t",
            otlp_endpoint=f"http://127.0.0.1:{port}",
            otlp_timeout=30.0,
            drain_timeout=1.0,
            shutdown_timeout=1.0,
            metrics_exporter="none",
        )
        tracer = tel.tracer_provider.get_tracer("t") if tel.tracer_provider else None
        assert tracer is not None
        for index in range(20):
            with tracer.start_as_current_span(f"work-{index}"):
                obs.get_logger("t").info("work.done", index=index)
        start = time.monotonic()
        result = lifecycle.run_shutdown_sequence()
        elapsed = time.monotonic() - start
    assert result is not None
    assert elapsed < 1.0 + 0.5  # shutdown_timeout + margin (stock SDK: 30 s and more)
    assert result.outcomes["inflight"] == "ok"


def _handler(signum: int, frame: FrameType | None) -> None:
    """A stand-in for a server's own SIGTERM handler."""


def test_handlers_chain_and_restore() -> None:
    """setup() chains in front of the current handler; reset() puts it back."""
    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        obs.setup(environ={}, service_name="t", traces_exporter="none", logs_exporter="none")
        assert signal.getsignal(signal.SIGTERM) is not _handler
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        lifecycle.reset()
        assert signal.getsignal(signal.SIGTERM) is _handler
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_opt_out_and_ignored_signals_untouched() -> None:
    """handle_signals=False installs nothing; a signal the app ignores stays ignored."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        obs.setup(environ={}, service_name="t", handle_signals=False)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert lifecycle.install_signal_handlers()
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    finally:
        lifecycle.reset()
        signal.signal(signal.SIGTERM, previous)


def test_install_off_main_thread_is_refused() -> None:
    """Handlers can only be installed from the main thread; elsewhere it says so."""
    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.append(lifecycle.install_signal_handlers()))
    thread.start()
    thread.join(5)
    assert results == [False]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_budget_must_fit_the_grace_period() -> None:
    """setup() rejects drain_delay + drain_timeout + shutdown_timeout beyond grace_period."""
    with pytest.raises(obs.ConfigError, match="grace_period"):
        obs.setup(environ={}, service_name="t", drain_delay=10, drain_timeout=15)
    assert lifecycle.run_shutdown_sequence() is None  # nothing half-installed
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_direct_shutdown_fails_readiness() -> None:
    """tel.shutdown() without the sequence still turns readiness off."""
    tel = obs.setup(environ={}, service_name="t", traces_exporter="none", logs_exporter="none")
    tel.health.mark_started()
    tel.shutdown(timeout=1)
    assert tel.health.check_sync("readiness").reason == "draining"


def test_inflight_counts_across_threads_and_never_goes_below_zero() -> None:
    """Entries and exits from many threads at once add up exactly (no lock on the hot
    path); an unpaired extra exit shows as zero, not below."""
    from concurrent.futures import ThreadPoolExecutor

    inflight.reset()

    def one_request(_: int) -> None:
        inflight.enter()
        inflight.exit()

    with ThreadPoolExecutor(8) as pool:
        for _ in range(4):
            inflight.enter()
        list(pool.map(one_request, range(2_000)))
    assert inflight.count == 4
    for _ in range(5):
        inflight.exit()
    assert inflight.count == 0
    assert inflight.wait_idle(0)
