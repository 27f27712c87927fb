"""Runtime metrics: GC pauses and event-loop lag as histograms, threads and asyncio tasks."""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import unified_obs as obs
from unified_obs import metrics
from unified_obs.metrics import _runtime

GEN = "cpython.gc.generation"


@pytest.fixture
def runtime() -> _runtime.Runtime:
    """setup() with nothing exported; the process's runtime metrics."""
    obs.setup(service_name="runtime-test", environ={}, traces_exporter="none", log_stdlib=False)
    found = _runtime.current()
    assert found is not None
    return found


@pytest.fixture
def no_automatic_gc() -> Iterator[None]:
    """Only explicit ``gc.collect()`` calls collect while the test runs."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _pauses(generation: int) -> float:
    _runtime.flush()
    return metrics.value("unified_obs.gc.pause.duration", **{GEN: str(generation)}) or 0.0


def _samples(name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of ``name`` on ``/metrics`` (text format), keyed by sorted labels
    (without the ``otel_scope_*`` ones every sample carries)."""
    _, _, body = metrics.render()
    return {
        tuple(
            sorted((k, v) for k, v in s.labels.items() if not k.startswith("otel_scope"))
        ): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name == name
    }


@pytest.mark.usefixtures("no_automatic_gc")
def test_a_full_collection_adds_one_pause_to_generation_2(runtime: _runtime.Runtime) -> None:
    """``gc.collect(2)`` is one observation of the generation-2 histogram, and
    ``gc.collect(0)`` one of generation 0; the pause is a positive duration."""
    before = (_pauses(0), _pauses(2))
    gc.collect(2)
    gc.collect(0)
    assert (_pauses(0), _pauses(2)) == (before[0] + 1, before[1] + 1)
    sums = _samples("unified_obs_gc_pause_duration_seconds_sum")
    assert all(
        value > 0 for labels, value in sums.items() if (GEN.replace(".", "_"), "2") in labels
    )


def test_the_gc_hook_takes_no_lock_and_calls_no_metric(runtime: _runtime.Runtime) -> None:
    """A collection triggered while this thread holds the flush lock and the metrics'
    definition lock completes: the hook only writes into its preallocated ring."""
    done = threading.Event()

    def collect_holding_locks() -> None:
        with runtime._lock, metrics._lock:
            gc.collect()
        done.set()

    worker = threading.Thread(target=collect_holding_locks, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert done.is_set()


def _wait_for(pid: int, seconds: float) -> bool:
    """Whether child ``pid`` exited within ``seconds`` (killed if not)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return True
        time.sleep(0.01)  # polling a child's exit, not an assertion
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return False


@pytest.mark.usefixtures("no_automatic_gc")
def test_a_forked_child_starts_with_an_empty_ring_and_a_free_lock(
    runtime: _runtime.Runtime,
) -> None:
    """A pause stored but not yet flushed when the process forks is counted by the
    parent only, and a fork taken while the flush lock was held leaves the child's free."""
    before = _pauses(2)
    read, write = os.pipe()
    with runtime._lock:  # the flush thread cannot move the pause before the fork
        gc.collect(2)
        pid = os.fork()
        if pid == 0:  # child, lock still held here: report through the pipe and leave
            try:
                os.write(write, str(_pauses(2) - before).encode())
            finally:
                os._exit(0)
    os.close(write)
    exited = _wait_for(pid, seconds=30)
    child = os.read(read, 64).decode() if exited else "hung"
    os.close(read)
    assert child == "0.0"
    assert _pauses(2) == before + 1


def test_thread_count_matches_proc(runtime: _runtime.Runtime) -> None:
    """``process_threads`` is the kernel's count of the process's threads."""
    stop = threading.Event()
    extra = [threading.Thread(target=stop.wait, daemon=True) for _ in range(3)]
    for thread in extra:
        thread.start()
    try:
        with open("/proc/self/status") as status:
            expected = next(int(line.split()[1]) for line in status if line.startswith("Threads:"))
        assert metrics.value("process.thread.count") == expected
    finally:
        stop.set()


def test_a_blocked_event_loop_shows_as_lag(runtime: _runtime.Runtime) -> None:
    """A callback that holds the loop for 0.3 s yields a lag observation of at least
    0.25 s, and the tasks gauge counts the loop's unfinished tasks."""

    async def main() -> None:
        metrics.watch_event_loop()
        background = [asyncio.create_task(asyncio.Event().wait()) for _ in range(4)]
        await asyncio.sleep(runtime.lag_interval * 2)
        time.sleep(0.3)  # the stall being measured: the loop can run nothing else
        for _ in range(3):
            await asyncio.sleep(runtime.lag_interval)
        for task in background:
            task.cancel()

    asyncio.run(main())
    buckets = _samples("unified_obs_asyncio_loop_lag_seconds_bucket")
    count = buckets[(("le", "+Inf"),)]
    assert count - buckets[(("le", "0.25"),)] >= 1
    assert (metrics.value("unified_obs.asyncio.tasks") or 0) >= 5


def test_watching_is_a_no_op_before_setup_and_outside_a_loop() -> None:
    """Before ``setup()`` and without a running loop, ``watch_event_loop`` does nothing
    and raises nothing."""
    metrics.watch_event_loop()
    assert _runtime.current() is None


def test_the_runtime_families_pass_promtool(runtime: _runtime.Runtime) -> None:
    """``/metrics`` carries the GC-pause and loop-lag histograms and the thread gauge,
    and ``promtool check metrics`` accepts the exposition."""
    gc.collect()
    _, _, body = metrics.render()
    text = body.decode()
    for family in (
        "# TYPE unified_obs_gc_pause_duration_seconds histogram",
        "# TYPE unified_obs_asyncio_loop_lag_seconds histogram",
        "# TYPE process_threads gauge",
    ):
        assert family in text
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool missing: install the Debian package 'prometheus'"
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_asgi_middleware_watches_the_servers_loop_at_lifespan_startup(
    runtime: _runtime.Runtime,
) -> None:
    """An ASGI server's lifespan startup through ``ObservabilityMiddleware`` starts the
    lag timer on the server's loop: lag observations follow without any call by the app."""
    from unified_obs.asgi import ObservabilityMiddleware

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})

    async def serve() -> None:
        inbox: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
        await inbox.put({"type": "lifespan.startup"})
        sent: list[MutableMapping[str, Any]] = []

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "lifespan.startup.complete":
                for _ in range(3):
                    await asyncio.sleep(runtime.lag_interval)
                await inbox.put({"type": "lifespan.shutdown"})

        await ObservabilityMiddleware(app)({"type": "lifespan"}, inbox.get, send)

    lag = "unified_obs.asyncio.loop.lag"
    before = metrics.value(lag) or 0.0
    asyncio.run(serve())
    assert (metrics.value(lag) or 0.0) > before


@pytest.mark.usefixtures("no_automatic_gc")
def test_runtime_metrics_go_over_otlp_too() -> None:
    """The GC-pause histogram (with a generation-2 pause collected just before shutdown)
    and the thread count arrive over OTLP under their instrument names."""
    from tests.otlp_receiver import otlp_receiver

    with otlp_receiver() as (endpoint, received):
        obs.setup(service_name="runtime-otlp", environ={}, otlp_endpoint=endpoint)
        gc.collect(2)
        assert obs.shutdown(timeout=5).ok
        names = {metric.name: metric for _, metric in received.metrics()}
    pauses = names["unified_obs.gc.pause.duration"].histogram.data_points
    by_generation = {
        {kv.key: kv.value.int_value for kv in p.attributes}[GEN]: p.count for p in pauses
    }
    assert by_generation.get(2, 0) >= 1
    assert names["process.thread.count"].sum.data_points[0].as_double >= 1


def test_pauses_beyond_the_ring_are_counted_as_lost(runtime: _runtime.Runtime) -> None:
    """More pauses between two flushes than the ring holds: the newest 4096 are measured,
    the rest counted in ``unified_obs.gc.pause.lost``, and memory does not grow."""
    before = _pauses(1)
    with runtime._lock:  # no flush while the ring overflows
        for _ in range(5000):
            runtime._ring.callback("start", {"generation": 1})
            runtime._ring.callback("stop", {"generation": 1})
    runtime.flush()
    assert metrics.value("unified_obs.gc.pause.lost") == 5000 - 4096
    assert _pauses(1) - before >= 4096
    assert len(runtime._ring.seconds) == 4096


def _collect_then_run_a_little() -> None:
    gc.collect()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the handed-on signal is handled here, once delivered
        time.sleep(0.001)


@pytest.mark.usefixtures("no_automatic_gc")
def test_ctrl_c_handled_inside_the_gc_hook_is_not_lost(
    runtime: _runtime.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A KeyboardInterrupt raised by a signal handler that ran inside the GC-pause hook
    (here the default SIGINT handler, called from the hook as the interpreter calls a
    handler there) still reaches the program: CPython drops what a GC callback raises."""

    class CtrlCOnFirstWrite(list[float]):
        """The hook's start-time slot; Ctrl-C's handler runs as the hook first writes it."""

        def __setitem__(self, index: Any, value: Any) -> None:
            super().__setitem__(index, value)
            if len(self) == 1:
                self.append(value)
                signal.default_int_handler(signal.SIGINT, None)

    monkeypatch.setattr(runtime._ring, "started", CtrlCOnFirstWrite([0.0]))
    with pytest.raises(KeyboardInterrupt):
        _collect_then_run_a_little()


def test_the_signal_handed_on_is_the_one_whose_handler_raised() -> None:
    """A SIGTERM handler's SystemExit maps to SIGTERM (found on the traceback), the
    default handler's KeyboardInterrupt to SIGINT, and an exception no handler raised to
    none."""

    def on_term(signum: int, frame: object) -> None:
        raise SystemExit(0)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        with pytest.raises(SystemExit) as raised:
            on_term(signal.SIGTERM, None)
        assert _runtime._signal_of(raised.value) == signal.SIGTERM
        assert _runtime._signal_of(KeyboardInterrupt()) == signal.SIGINT
        assert _runtime._signal_of(ValueError()) is None
    finally:
        signal.signal(signal.SIGTERM, previous)
