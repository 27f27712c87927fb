"""``@traced`` against the raw SDK span it replaces, on the same provider, in the same run.

Every group runs ``unified_obs.setup()`` (no exporters) and adds the batch processor
``setup()`` installs for an exporter (``LeanBatchSpanProcessor``) with an exporter that
drops everything, so a sampled span pays what it pays in production up to the export.
The decorated functions are plain module-level functions decorated at import time,
before ``setup()``: the tracer is found lazily.

- sampled: ``@traced`` (span + ``function.calls`` + ``function.duration`` with an
  exemplar) vs ``tracer.start_as_current_span`` with the same three ``code.*``
  attributes and no metrics; sync and async (coroutines driven by ``send(None)``);
- inside a trace that is not sampled (a non-recording parent is current): ``@traced``
  against a 3 µs spin on ``perf_counter_ns``, so the ratio reads as "fraction of 3 µs";
- sampled out at the root (ratio 0): ``@traced`` vs the SDK's own non-recording
  ``start_as_current_span`` plus the same metric record (two ``perf_counter`` calls,
  a counter ``inc`` and a histogram ``observe`` on bound children);
- inside a trace that is not sampled with fault injection armed and a rule for another
  target: what a decorated function pays for being a fault point in an armed process
  (unarmed, the second group's figure already includes the one flag read).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final

from opentelemetry import context, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import unified_obs as obs
from benchmarks._harness import Group
from unified_obs import metrics
from unified_obs.decorators import traced
from unified_obs.resilience import faults
from unified_obs.testing import reset
from unified_obs.tracing import LeanBatchSpanProcessor

ATTRIBUTES_OF: Final = "code.function.name", "code.file.path", "code.line.number"


class DropExporter(SpanExporter):
    """Accepts every batch and keeps nothing."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Drop ``spans``."""
        return SpanExportResult.SUCCESS


def noop() -> None:
    """The undecorated function the raw cases wrap."""


async def anoop() -> None:
    """The undecorated coroutine the raw async case awaits."""


@traced
def traced_noop() -> None:
    """A decorated no-op."""


@traced
async def traced_anoop() -> None:
    """A decorated no-op coroutine."""


def drive(make: Callable[[], Coroutine[Any, Any, Any]]) -> None:
    """Run a coroutine that never suspends to completion, without an event loop."""
    coroutine = make()
    try:
        coroutine.send(None)
    except StopIteration:
        return
    raise RuntimeError("the benchmark coroutine suspended")


class _State:
    """What ``setup`` builds and the cases use."""

    tracer: trace.Tracer = trace.NoOpTracer()
    token: object = None
    calls: Any = None
    duration: Any = None


_state: Final = _State()


def _site_attributes(fn: Any) -> dict[str, Any]:
    """The ``code.*`` attributes ``traced`` computed for ``fn``, to give the raw span."""
    from unified_obs.decorators._call_site import code_attributes

    return code_attributes(fn.__wrapped__)


SYNC_ATTRIBUTES: Final = _site_attributes(traced_noop)
ASYNC_ATTRIBUTES: Final = _site_attributes(traced_anoop)


def _setup(**options: Any) -> TracerProvider:
    reset()
    telemetry = obs.setup(
        environ={},
        service_name="bench",
        traces_exporter="none",
        metrics_exporter="none",
        logs_exporter="none",
        **options,
    )
    provider = telemetry.tracer_provider
    assert provider is not None
    provider.add_span_processor(LeanBatchSpanProcessor(DropExporter()))
    _state.tracer = provider.get_tracer("bench")
    labels = ("function", "module", "outcome", "error_type")
    _state.calls = metrics.counter("bench.calls", labels=labels).labels("f", "m", "ok", "")
    _state.duration = metrics.histogram("bench.duration", labels=labels[:3], unit="s").labels(
        "f", "m", "ok"
    )
    return provider


def _teardown() -> None:
    if _state.token is not None:
        context.detach(_state.token)  # type: ignore[arg-type]
        _state.token = None
    reset()


def raw_sync() -> None:
    """The raw SDK span around the call, as users write it."""
    with _state.tracer.start_as_current_span(
        "noop",
        attributes={
            "code.function.name": SYNC_ATTRIBUTES["code.function.name"],
            "code.file.path": SYNC_ATTRIBUTES["code.file.path"],
            "code.line.number": SYNC_ATTRIBUTES["code.line.number"],
        },
    ):
        noop()


async def raw_async() -> None:
    """The raw SDK span around an awaited call."""
    with _state.tracer.start_as_current_span(
        "anoop",
        attributes={
            "code.function.name": ASYNC_ATTRIBUTES["code.function.name"],
            "code.file.path": ASYNC_ATTRIBUTES["code.file.path"],
            "code.line.number": ASYNC_ATTRIBUTES["code.line.number"],
        },
    ):
        await anoop()


def span_block() -> None:
    """``obs.span`` around the call, with the same attributes as the raw span."""
    with obs.span("noop", **SYNC_ATTRIBUTES):
        noop()


def raw_sync_with_metrics() -> None:
    """The raw span plus the metric record ``traced`` does (timing, inc, observe)."""
    start = time.perf_counter()
    raw_sync()
    elapsed = time.perf_counter() - start
    _state.calls.inc()
    _state.duration.observe(elapsed)


def spin_3us() -> None:
    """A 3 µs reference: spins on the clock."""
    end = time.perf_counter_ns() + 3000
    while time.perf_counter_ns() < end:
        pass


def _sampled_setup() -> None:
    _setup(traces_sampler="parentbased_always_on")


def _unsampled_parent_setup() -> None:
    _setup(traces_sampler="parentbased_always_on")
    parent = trace.NonRecordingSpan(
        trace.SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=trace.TraceFlags(0))
    )
    _state.token = context.attach(trace.set_span_in_context(parent))


def _armed_unsampled_parent_setup() -> None:
    _unsampled_parent_setup()
    faults.configure(faults.FaultRule(kind="abort", percentage=100, targets=("elsewhere",)))
    faults.arm(True)


def _root_sampled_out_setup() -> None:
    _setup(traces_sampler="parentbased_traceidratio", traces_sampler_arg=0.0)


def groups() -> list[Group]:
    """The three groups of the module docstring."""
    return [
        Group(
            "decorators: @traced, span sampled into a BatchSpanProcessor (ns per call)",
            cases={
                "raw SDK start_as_current_span, sync": raw_sync,
                "@traced sync (span + metrics)": traced_noop,
                "raw SDK start_as_current_span, async": lambda: drive(raw_async),
                "@traced async (span + metrics)": lambda: drive(traced_anoop),
                "obs.span block (span only)": span_block,
            },
            anchor="raw SDK start_as_current_span, sync",
            budgets={"@traced sync (span + metrics)": 1.2, "@traced async (span + metrics)": 1.2},
            budget_anchors={
                "@traced async (span + metrics)": "raw SDK start_as_current_span, async"
            },
            setup=_sampled_setup,
            teardown=_teardown,
        ),
        Group(
            "decorators: @traced inside a trace that is not sampled (ns per call)",
            cases={
                "reference: 3 us (spin on the clock)": spin_3us,
                "@traced sync (metrics, no span)": traced_noop,
                "raw SDK start_as_current_span, sync": raw_sync,
                "plain call": noop,
            },
            anchor="reference: 3 us (spin on the clock)",
            budgets={"@traced sync (metrics, no span)": 1.0},
            notes=(
                "The budget is 3 µs of wall time, so the anchor spins on the clock for 3 µs. "
                "A busy machine slows the measured code but not the spin: compare runs on an "
                "idle machine."
            ),
            setup=_unsampled_parent_setup,
            teardown=_teardown,
        ),
        Group(
            "decorators: @traced sampled out at the root, ratio 0 (ns per call)",
            cases={
                "raw SDK non-recording span + metric record": raw_sync_with_metrics,
                "@traced sync (non-recording span + metrics)": traced_noop,
                "raw SDK start_as_current_span, sync": raw_sync,
            },
            anchor="raw SDK non-recording span + metric record",
            budgets={"@traced sync (non-recording span + metrics)": 1.0},
            setup=_root_sampled_out_setup,
            teardown=_teardown,
        ),
        Group(
            "decorators: @traced in an unsampled trace, faults armed, no rule for it (ns per call)",
            cases={
                "reference: 3 us (spin on the clock)": spin_3us,
                "@traced sync (metrics, no span), armed": traced_noop,
                "@traced async (metrics, no span), armed": lambda: drive(traced_anoop),
                "plain call": noop,
            },
            anchor="reference: 3 us (spin on the clock)",
            budgets={"@traced sync (metrics, no span), armed": 1.0},
            setup=_armed_unsampled_parent_setup,
            teardown=_teardown,
        ),
    ]
