"""The tracer provider: sampler, limits, batch processing and the span exporter."""

from __future__ import annotations

# The SDK's TracerProvider re-detects its resource in a forked child through a thread pool.
# concurrent.futures.thread must register its at-fork lock reset before any provider
# registers that hook, or a child forked later (gunicorn --preload) deadlocks in submit().
import concurrent.futures.thread  # noqa: F401
import sys
from collections.abc import Callable
from typing import Any, Final, cast

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanContext

from .._compat.opentelemetry import parent_based_root
from .._compat.opentelemetry_batch import LeanBatchSpanProcessor
from .._compat.opentelemetry_tracer import _DROP, _SAMPLE, LeanTracerProvider
from .._otlp import otlp_exporter
from ..config import Settings
from ._rate_limited import DecisionObserver, RateLimitedSampler
from ._tail_keep import PromotingProcessor, PromotionObserver, RecordDropped

__all__ = [
    "ClosableSampler",
    "LeanBatchSpanProcessor",
    "build_sampler",
    "build_tracer_provider",
    "fast_paths",
    "keeping",
    "keeps_dropped",
]


class ClosableSampler(Sampler):
    """Delegates to the configured sampler until closed at shutdown, then drops every span,
    so code running after ``shutdown()`` gets cheap non-recording spans.

    While open, ``should_sample`` *is* the inner sampler's bound method (an instance
    attribute), so a sampled span pays no extra call for the wrapper.
    """

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner
        self._closed = False
        self._open_decide = _decider(inner)
        self.decide: Decide | None = self._open_decide
        setattr(self, "should_sample", inner.should_sample)  # noqa: B010 - shadows the method

    @property
    def closed(self) -> bool:
        """Whether every span is dropped from now on."""
        return self._closed

    @closed.setter
    def closed(self, value: bool) -> None:
        self._closed = value
        setattr(self, "should_sample", self._drop if value else self.inner.should_sample)  # noqa: B010
        self.decide = _always_drop if value else self._open_decide

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        """Shadowed per instance (see the class docstring); kept for the abstract method."""
        if self._closed:
            return self._drop()
        return self.inner.should_sample(*args, **kwargs)

    @staticmethod
    def _drop(*args: Any, **kwargs: Any) -> SamplingResult:
        return SamplingResult(Decision.DROP)

    def get_description(self) -> str:
        return self.inner.get_description()


Decide = Callable[[SpanContext | None, int], Decision]
"""A sampler's decision from the parent's span context and the trace id alone."""


def _describe(sampler: Sampler) -> str:
    return str(sampler.get_description())  # typed on Sampler, untyped on its subclasses


_ID_LIMIT: Final = TraceIdRatioBased.TRACE_ID_LIMIT


def _decider(sampler: Sampler) -> Decide | None:
    """The decision of ``sampler`` as a function of the parent and the trace id alone,
    for the samplers whose results depend on nothing else and keep the parent's trace
    state and the attributes (the lean tracer's shortcut): always-on, always-off and the
    trace-id ratio, each alone or behind ``ParentBased`` with its default delegates;
    ``None`` for any other sampler."""
    if sampler is ALWAYS_ON:
        return _always_sample
    if sampler is ALWAYS_OFF:
        return _always_drop
    if type(sampler) is TraceIdRatioBased:
        return _by_ratio(sampler.bound)
    if type(sampler) is not ParentBased:  # a subclass may decide otherwise
        return None
    description = _describe(sampler)
    fixed = _PARENT_BASED.get(description)
    if fixed is not None:
        return fixed
    root = parent_based_root(sampler)
    # the description names every delegate: equal to the default one's, it has them
    if type(root) is TraceIdRatioBased and description == _describe(
        ParentBased(TraceIdRatioBased(root.rate))
    ):
        return _parent_or_ratio(root.bound)
    return None


def _always_sample(parent: SpanContext | None, trace_id: int) -> Decision:
    return _SAMPLE


def _always_drop(parent: SpanContext | None, trace_id: int) -> Decision:
    return _DROP


def _follow_parent(parent: SpanContext | None, trace_id: int) -> Decision:
    if parent is None or parent.trace_flags.sampled:
        return _SAMPLE
    return _DROP


def _parent_only(parent: SpanContext | None, trace_id: int) -> Decision:
    if parent is not None and parent.trace_flags.sampled:
        return _SAMPLE
    return _DROP


_PARENT_BASED: Final[dict[str, Decide]] = {
    _describe(ParentBased(ALWAYS_ON)): _follow_parent,
    _describe(ParentBased(ALWAYS_OFF)): _parent_only,
}
"""``ParentBased`` over a fixed root, with its default delegates, by description."""


def _by_ratio(bound: int) -> Decide:
    """``TraceIdRatioBased``: the trace id's low 64 bits below the ratio's bound."""

    def decide(parent: SpanContext | None, trace_id: int) -> Decision:
        return _SAMPLE if trace_id & _ID_LIMIT < bound else _DROP

    return decide


def _parent_or_ratio(bound: int) -> Decide:
    """``ParentBased(TraceIdRatioBased)``: the parent's choice, else the trace id's."""

    def decide(parent: SpanContext | None, trace_id: int) -> Decision:
        if parent is None:
            return _SAMPLE if trace_id & _ID_LIMIT < bound else _DROP
        return _SAMPLE if parent.trace_flags.sampled else _DROP

    return decide


def build_sampler(
    name: str,
    arg: float,
    *,
    on_root_decision: DecisionObserver | None = None,
    record_dropped: bool = False,
) -> Sampler:
    """The sampler named as ``OTEL_TRACES_SAMPLER`` names them, plus
    ``parentbased_ratelimited`` (``arg`` root traces per second, see
    :mod:`._rate_limited`; ``on_root_decision`` sees each root's decision).
    ``record_dropped``: a ``parentbased_`` sampler records the roots (and the spans of
    unsampled remote parents) it drops, unsampled, for :mod:`._tail_keep` to keep."""
    root: Sampler
    base = name.removeprefix("parentbased_")
    if base == "ratelimited":
        root = RateLimitedSampler(arg, on_decision=on_root_decision)
    elif base == "always_on":
        root = ALWAYS_ON
    elif base == "always_off":
        root = ALWAYS_OFF
    else:
        root = TraceIdRatioBased(arg)
    if not name.startswith("parentbased_"):
        return root
    if record_dropped:
        return ParentBased(RecordDropped(root), remote_parent_not_sampled=RecordDropped(ALWAYS_OFF))
    return ParentBased(root)


def fast_paths(settings: Settings) -> dict[str, bool]:
    """Which fast paths ``settings`` get in this process: ``lean_spans`` (the installed
    SDK's span layout is the one the lean span path fills), ``sampler_shortcut`` (the
    configured sampler decides from the parent and trace id alone, so the lean tracer
    skips the SDK's ``should_sample`` call), then every path built on another library's
    private names (``otel.batch_export_hook`` and the like, see ``_compat``), each
    ``False`` where the public API is used instead."""
    from .._compat import active_paths
    from .._compat.opentelemetry_tracer import lean_spans_supported

    sampler = build_sampler(settings.traces_sampler, settings.traces_sampler_arg)
    return {
        "lean_spans": lean_spans_supported(),
        "sampler_shortcut": _decider(sampler) is not None,
        **active_paths(),
    }


def build_tracer_provider(
    settings: Settings,
    resource: Resource,
    *,
    on_root_decision: DecisionObserver | None = None,
    on_promote: PromotionObserver | None = None,
) -> TracerProvider:
    """An SDK provider for ``settings``; the exporter runs off the request path.
    ``on_root_decision`` sees the rate-limited sampler's decisions, ``on_promote`` the
    dropped spans kept at their end (the sampling metrics)."""
    sampler = build_sampler(
        settings.traces_sampler,
        settings.traces_sampler_arg,
        on_root_decision=on_root_decision,
        record_dropped=keeps_dropped(settings),
    )
    provider = LeanTracerProvider(
        resource=resource,
        sampler=ClosableSampler(sampler),
        span_limits=SpanLimits(
            max_attributes=settings.attribute_count_limit,
            max_span_attributes=settings.limits().spans.count,
            max_span_attribute_length=settings.limits().spans.value_length,
            max_attribute_length=settings.attribute_value_length_limit,
        ),
        shutdown_on_exit=False,  # our own atexit hook bounds the time
    )
    exporter = _build_exporter(settings)
    if exporter is not None:
        batch = LeanBatchSpanProcessor(
            exporter,
            max_queue_size=settings.bsp_max_queue_size,
            schedule_delay_millis=settings.bsp_schedule_delay * 1000,
            max_export_batch_size=settings.bsp_max_export_batch_size,
            export_timeout_millis=settings.bsp_export_timeout * 1000,
        )
        provider.add_span_processor(keeping(settings, batch, on_promote))
    return provider


def keeps_dropped(settings: Settings) -> bool:
    """Whether ``settings`` ask to keep failed or slow requests the head sampler dropped
    (``traces_keep_errors``, ``traces_keep_slower_than``; ``parentbased_`` samplers)."""
    wanted = settings.traces_keep_errors or settings.traces_keep_slower_than is not None
    return wanted and settings.traces_sampler.startswith("parentbased_")


def keeping(
    settings: Settings, processor: SpanProcessor, on_promote: PromotionObserver | None = None
) -> SpanProcessor:
    """``processor``, wrapped to also receive the dropped spans worth keeping when
    :func:`keeps_dropped` (``testing.capture`` wraps its in-memory processor the same way)."""
    if not keeps_dropped(settings):
        return processor
    return PromotingProcessor(
        processor,
        keep_errors=settings.traces_keep_errors,
        slower_than=settings.traces_keep_slower_than,
        on_promote=on_promote,
    )


def _build_exporter(settings: Settings) -> SpanExporter | None:
    choice = settings.exporter("traces")
    if choice == "none":
        return None
    if choice == "console":
        return ConsoleSpanExporter(
            out=sys.stdout,  # the current stream: the SDK's default is the one at its import
            formatter=lambda span: span.to_json(indent=None) + "\n",
        )
    return cast(SpanExporter, otlp_exporter("traces", settings.otlp("traces")))
