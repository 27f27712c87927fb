"""``setup()``, ``shutdown()`` and the ``Telemetry`` handle.

The only module that composes the others and sets OpenTelemetry's globals.  All
process-wide state of unified_obs lives in ``_state`` below; ``testing.reset()``
is the supported way to clear it.
"""

from __future__ import annotations

import atexit
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, Protocol

from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from typing_extensions import Unpack

from . import endpoints, health, lifecycle, limits, logs, metrics, outbound, redact
from ._compat import opentelemetry as otel_compat
from ._http import configure_known_methods
from ._http.next_turn import run_pending
from .config import Settings
from .config._options import SetupOptions
from .lifecycle import ShutdownHook, ShutdownManager, ShutdownResult, run_parallel
from .resilience import faults
from .resource import build_resource
from .tracing import ClosableSampler, build_tracer_provider

if TYPE_CHECKING:
    from .admin import AdminServer

__all__ = ["Telemetry", "active", "setup", "shutdown"]

_lock: Final = threading.RLock()
_JOIN_SLACK: Final = 0.5
"""Seconds a signal handler waits past the budget for the shutdown thread's last steps
(closing the log sink) before it returns ``timeout``."""


class Telemetry:
    """The handle ``setup()`` returns: providers, settings and the shutdown sequence."""

    def __init__(
        self,
        settings: Settings,
        resource: Resource,
        tracer_provider: TracerProvider | None,
        log_pipeline: logs.LogPipeline,
    ) -> None:
        self.settings: Final = settings
        self.resource: Final = resource
        self.tracer_provider: Final = tracer_provider
        self.log_pipeline: Final = log_pipeline
        self.health: Final = health.default_registry()
        self._shutdown = ShutdownManager()
        self._flushers: dict[str, Callable[[float], bool]] = {}
        self._closers: dict[str, Callable[[float], bool]] = {}
        self.sources: tuple[Mapping[str, str] | None, frozenset[str]] = (None, frozenset())
        """(the environment given to ``setup()``, ``None``: os.environ; the names given in
        code): where each setting came from, for ``serve_debug``."""

    @property
    def is_shut_down(self) -> bool:
        """Whether :meth:`shutdown` has run."""
        return self._shutdown.done

    def on_shutdown(self, hook: ShutdownHook, *, name: str | None = None) -> ShutdownHook:
        """Run ``hook`` (sync or async) at shutdown, last registered first; a decorator too."""
        return self._shutdown.on_shutdown(hook, name=name)

    def add_signal(
        self, name: str, *, flush: Callable[[float], bool], close: Callable[[float], bool]
    ) -> None:
        """Register a signal's flush and shutdown (``timeout`` in seconds -> success)."""
        self._flushers[name] = _single_flight(flush)
        self._closers[name] = close

    def serve_admin(self, port: int = 0, host: str = "127.0.0.1") -> AdminServer:
        """Serve ``/livez`` ``/readyz`` ``/startupz`` ``/healthz`` ``/metrics`` in a thread.

        Binds ``host`` (loopback by default: nothing outside the pod or machine can reach
        it); pass ``host="0.0.0.0"`` for Kubernetes probes or a Prometheus scrape sent to
        the pod IP.  ``port=0`` picks a free port (see the returned server's ``port``).
        """
        from . import admin  # http.server and friends: only for services that want it

        return admin.serve(port, host, registry=self.health, details=self.settings.health_details)

    def serve_debug(
        self, port: int = 0, host: str = "127.0.0.1", *, allow_remote: bool = False
    ) -> AdminServer:
        """Serve the debug endpoints (``/debug/config`` ``/debug/threads`` ``/debug/tasks``
        ``/debug/telemetry``; secrets masked) on their own listener, in a thread.

        Loopback only: another ``host`` raises ``ConfigError`` unless ``allow_remote=True``.
        """
        from . import admin, config, debug

        debug.check_host(host, allow_remote)
        environ, arguments = self.sources

        def configuration() -> list[config.Entry]:
            return config.effective(self.settings, environ, arguments)

        return admin.serve_routes(
            debug.routes(self.settings, configuration), port, host, name="debug"
        )

    def force_flush(self, timeout: float | None = None) -> ShutdownResult:
        """Export everything buffered now, every signal in parallel, within ``timeout``."""
        start = time.monotonic()
        budget = self.settings.shutdown_timeout if timeout is None else timeout
        run_pending(start + budget)  # requests whose recording waits for a loop's next turn
        outcomes = run_parallel(self._flushers, budget - (time.monotonic() - start))
        return ShutdownResult(outcomes, time.monotonic() - start, counts=_export_counts())

    def shutdown(self, timeout: float | None = None) -> ShutdownResult:
        """Run hooks, flush and close every signal within ``timeout`` seconds; never raises.

        Idempotent: later calls return the first result immediately.  Called inside a
        signal handler, the work runs on a shutdown thread (the interrupted code may hold
        any lock) and the handler waits for it within ``timeout``; while the sequence is
        running already (``atexit``, interrupted by the signal), it returns ``pending`` at once.
        """
        start = time.monotonic()  # the one deadline counts from here
        self.health.start_draining()  # readiness (and gRPC health) fail from now on
        budget = self.settings.shutdown_timeout if timeout is None else max(float(timeout), 0.0)
        if lifecycle.in_signal_handler():
            return self._shutdown_off_thread(budget, start)
        return self._shutdown_here(budget, start)

    def _shutdown_off_thread(self, budget: float, start: float) -> ShutdownResult:
        """Run the shutdown on its own thread; wait for it at most ``budget`` (+ slack).

        The thread is not a daemon: if the handler exits the process, the interpreter
        waits for it (bounded by the same deadline) before ``atexit``."""
        if self._shutdown.running:
            return ShutdownResult(MappingProxyType({"shutdown": "pending"}))
        results: list[ShutdownResult] = []
        worker = threading.Thread(
            target=lambda: results.append(self._shutdown_here(budget, start)),
            name="unified_obs-shutdown",
        )
        worker.start()
        worker.join((min(budget, 1e9) if budget >= 0.0 else 0.0) + _JOIN_SLACK)  # NaN: 0
        return results[0] if results else ShutdownResult(MappingProxyType({"shutdown": "timeout"}))

    def _shutdown_here(self, budget: float, start: float) -> ShutdownResult:
        """The sequence, all of it inside ``budget`` from ``start``: the requests whose
        recording waits for an event loop's next turn (up to ``MAX_PENDING`` of them when
        the caller runs on that loop), hooks, then every signal's flush and close."""
        run_pending(start + budget)
        result = self._shutdown.run(self._closers, budget, counts=_export_counts, started=start)
        sampler = getattr(self.tracer_provider, "sampler", None)
        if isinstance(sampler, ClosableSampler):
            sampler.closed = True  # spans made from now on are non-recording
        logs.close(self.log_pipeline)
        return result


_state: dict[str, Telemetry] = {}


def active() -> Telemetry | None:
    """The live handle, or ``None`` before ``setup()`` (and after ``testing.reset()``)."""
    return _state.get("telemetry")


def setup(
    *, environ: Mapping[str, str] | None = None, **options: Unpack[SetupOptions]
) -> Telemetry:
    """Wire traces, metrics and logs that share one context; returns the ``Telemetry`` handle.

    Every option is a :class:`~unified_obs.Settings` field (``service_name``,
    ``traces_exporter``, ``log_level`` ...); options given here win over the
    environment, which wins over defaults.  A bad option raises ``ConfigError``;
    a bad environment value warns and uses the default.  Calling ``setup()``
    again warns and returns the existing handle.
    """
    with _lock:
        existing = _state.get("telemetry")
        if existing is not None:
            warnings.warn(
                "unified_obs.setup() was already called; returning the existing handle",
                RuntimeWarning,
                stacklevel=2,
            )
            return existing
        settings = Settings.from_env(environ, **options)
        limits.configure(settings.limits())
        redact.configure(settings.redact_keys, query_limit=settings.limits().spans.value_length)
        configure_known_methods(settings.http_known_methods)
        endpoints.configure(details=settings.health_details)  # the middleware's probes too
        telemetry = _build(settings)
        telemetry.sources = (environ, frozenset(options))
        _state["telemetry"] = telemetry
        atexit.register(_at_exit)
        _install_lifecycle(telemetry)
        return telemetry


def _install_lifecycle(telemetry: Telemetry) -> None:
    """Register the graceful sequence; chain SIGTERM/SIGINT handlers unless opted out."""
    settings, begin = telemetry.settings, telemetry.health.start_draining
    sequence = lifecycle.graceful_sequence(
        begin_drain=begin,
        close=telemetry.shutdown,
        drain_delay=settings.drain_delay,
        drain_timeout=settings.drain_timeout,
        shutdown_timeout=settings.shutdown_timeout,
    )
    lifecycle.set_shutdown_sequence(
        sequence,
        begin_drain=begin,
        drain_delay=settings.drain_delay,
        drain_timeout=settings.drain_timeout,
    )
    if settings.handle_signals:
        lifecycle.install_signal_handlers()


def _build(settings: Settings) -> Telemetry:
    resource = build_resource(settings)
    tracer_provider = (
        None
        if settings.sdk_disabled
        else build_tracer_provider(
            settings,
            resource,
            on_root_decision=_sampling_metrics(settings),
            on_promote=_count_promoted,
        )
    )
    pipeline = logs.configure(settings, resource)
    telemetry = Telemetry(settings, resource, tracer_provider, pipeline)
    _set_propagators(settings.propagators)
    if tracer_provider is not None:
        _install_tracer_provider(tracer_provider)
        _add_provider(telemetry, "traces", tracer_provider)
    if pipeline.provider is not None:
        _add_provider(telemetry, "logs", pipeline.provider)
    _wire_metrics(telemetry, metrics.configure(settings, resource))
    outbound.configure(settings)  # hooks httpx/requests/aiohttp unless outbound_http=False
    faults.arm(settings.faults_enabled)  # the only switch that arms fault injection
    return telemetry


def _count_promoted(reason: str) -> None:
    """A dropped root kept at its end (``error``, ``latency``) or not (``capped``)."""
    metrics.counter(
        "unified_obs.trace.sampling.promoted",
        "Root spans the head sampler dropped, kept at their end for an error or latency",
        labels=("reason",),
    ).labels(reason).inc()


def _sampling_metrics(settings: Settings) -> Callable[[bool, float], None] | None:
    """What records the rate-limited sampler's root decisions, for that sampler only:
    ``unified_obs.trace.sampling.decisions{decision}``, the probability of the latest
    root and the per-process budget (summed over workers it is the service's)."""
    if settings.traces_sampler != "parentbased_ratelimited":
        return None
    metrics.gauge(
        "unified_obs.trace.sampling.limit",
        "Root traces per second this process keeps at most (rate-limited sampler)",
    ).set(settings.traces_sampler_arg)
    decisions = metrics.counter(
        "unified_obs.trace.sampling.decisions",
        "Root spans decided by the rate-limited sampler",
        labels=("decision",),
    )
    kept, dropped = decisions.labels("sampled"), decisions.labels("dropped")
    probability = metrics.gauge(
        "unified_obs.trace.sampling.probability",
        "Probability the rate-limited sampler gave the latest root span",
        multiprocess_mode="livemax",
    )

    def record(sampled: bool, chance: float) -> None:
        (kept if sampled else dropped).inc()
        probability.set(chance)

    return record


def _wire_metrics(telemetry: Telemetry, pipeline: metrics.MetricsPipeline) -> None:
    """Install the SDK meter provider (OTel-API metrics reach /metrics and OTLP) and register
    the metrics signal's flush and close."""
    if pipeline.provider is not None:
        from opentelemetry import metrics as otel_metrics

        current = otel_metrics.get_meter_provider()
        if otel_compat.is_unset_meter_provider(current):
            otel_metrics.set_meter_provider(pipeline.provider)
        else:
            warnings.warn(
                f"unified_obs: a global meter provider ({type(current).__name__}) is already "
                "installed; metrics made through the OpenTelemetry API keep going to it",
                RuntimeWarning,
                stacklevel=5,
            )
    if pipeline.pusher is not None or pipeline.provider is not None:
        telemetry.add_signal("metrics", flush=pipeline.flush, close=pipeline.close)
    from .metrics._self_metrics import new_epoch, watch_logger_provider, watch_tracer_provider

    new_epoch()
    if telemetry.tracer_provider is not None:
        watch_tracer_provider(telemetry.tracer_provider, metrics.count_export)
    if telemetry.log_pipeline.provider is not None:
        watch_logger_provider(telemetry.log_pipeline.provider, metrics.count_export)


def _single_flight(flush: Callable[[float], bool]) -> Callable[[float], bool]:
    """``flush`` that fails at once while an earlier call is still running (stuck on a
    collector that never answers), so repeated ``force_flush`` calls cannot pile up threads."""
    running = threading.Lock()

    def step(timeout: float) -> bool:
        if not running.acquire(blocking=False):
            return False
        try:
            return flush(timeout)
        finally:
            running.release()

    return step


class _Provider(Protocol):
    """What the SDK's tracer and logger providers share for flushing and closing."""

    def force_flush(self, timeout_millis: int = ...) -> bool: ...

    def shutdown(self) -> None: ...


def _add_provider(telemetry: Telemetry, name: str, provider: _Provider) -> None:
    """Register an SDK provider's flush and close (``force_flush`` then ``shutdown``).

    A flush succeeds when the SDK's flush finished in time *and* no export of the signal
    failed meanwhile (the SDK's flush reports only the former: a collector refusing every
    batch would otherwise look healthy)."""

    def flush(timeout: float) -> bool:
        failures = _failed_exports(name)
        finished = bool(provider.force_flush(int(timeout * 1000)))
        return finished and _failed_exports(name) == failures

    def close(timeout: float) -> bool:
        flushed = flush(timeout)
        provider.shutdown()
        return flushed

    telemetry.add_signal(name, flush=flush, close=close)


def _export_counts() -> Mapping[str, Mapping[str, int]]:
    """Where every span and log record went so far (read-only, per signal)."""
    from .metrics._self_metrics import export_counts

    counts = export_counts()
    return MappingProxyType({signal: MappingProxyType(n) for signal, n in counts.items()})


def _failed_exports(signal: str) -> float:
    """Failed export calls of ``signal`` so far (the self-metric)."""
    return metrics.value("unified_obs.export.failures", signal=signal) or 0.0


def _install_tracer_provider(provider: TracerProvider) -> None:
    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider):
        warnings.warn(
            f"unified_obs: a global tracer provider ({type(current).__name__}) is already "
            "installed; spans made through the OpenTelemetry API keep going to it",
            RuntimeWarning,
            stacklevel=4,
        )
        return
    trace.set_tracer_provider(provider)


def _set_propagators(names: tuple[str, ...]) -> None:
    known: dict[str, TextMapPropagator] = {
        "tracecontext": TraceContextTextMapPropagator(),
        "baggage": W3CBaggagePropagator(),
    }
    chosen = [known[name] for name in dict.fromkeys(names) if name in known]
    propagate.set_global_textmap(CompositePropagator(chosen))


def shutdown(timeout: float | None = None) -> ShutdownResult:
    """Shut the live handle down (see :meth:`Telemetry.shutdown`); a no-op before setup."""
    telemetry = active()
    if telemetry is None:
        return ShutdownResult()
    return telemetry.shutdown(timeout)


def _at_exit() -> None:
    telemetry = active()
    if (
        telemetry is not None
        and not telemetry.is_shut_down
        and lifecycle.run_shutdown_sequence() is None
    ):
        telemetry.shutdown()


def forget() -> Telemetry | None:
    """Drop the live handle without shutting it down (``testing.reset``)."""
    atexit.unregister(_at_exit)
    redact.configure()
    limits.configure()
    configure_known_methods()
    endpoints.configure()
    return _state.pop("telemetry", None)


def reset_propagators() -> None:
    """Back to OpenTelemetry's default propagators (``testing.reset``)."""
    _set_propagators(("tracecontext", "baggage"))
