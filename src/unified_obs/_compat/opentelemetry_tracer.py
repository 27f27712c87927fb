"""Spans at a fraction of the SDK's cost, from the tracer provider ``setup()`` builds.

The SDK's ``Tracer.start_span`` spends about half its time on bookkeeping that
instrumentation spans do not need: every attribute value goes through the generic
validator (one ``isinstance`` cascade per value, a lock per key), and the new span
builds its attribute mapping, event and link lists through the same path.
:class:`LeanTracer` does the same work in the same order -- the provider's sampler, id
generator, trace flags, limits, resource, tracer config, internal metrics and span
processors -- but builds a :class:`~unified_obs._compat.opentelemetry_spans.LeanSpan`, which adopts
attributes whose keys are non-empty strings and whose values are
``str``/``bool``/``int``/``float`` within the limits as they are (exactly what the
validator would have produced).  Anything else (sequences, odd types, too long or too
many values, links) takes the SDK's own path.

A sampler whose decision depends on the parent span and the trace id alone (and keeps
the parent's trace state and the attributes) may say so with a
``decide(parent, trace_id) -> Decision`` attribute, as ``tracing.ClosableSampler`` does
for ``always_on``, ``always_off``, ``traceidratio`` and their ``parentbased_`` forms;
the lean tracer then skips building a ``SamplingResult``.

Spans are SDK ``Span`` objects: processors, exporters and user code see nothing new.
:func:`lean_spans_supported` compares the lean span's fields with the installed SDK's
once (and starts one lean span), so an SDK release that changes them switches the lean
path off instead of producing broken spans.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span, SpanLimits, Tracer
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.util import types

from ._probes import decide, register
from .opentelemetry import current_context_getter, span_key
from .opentelemetry_spans import LeanSpan, adoptable, span_attributes


class _NoTracerMetrics:
    """Span metrics of an SDK that has none (before 1.40): nothing to record."""

    def start_span(self, *args: Any) -> None:
        return None


try:  # the SDK's own span metrics (1.41+); a no-op unless switched on
    from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
except ImportError:  # 1.40 records them always (the SDK asks them too), 1.39 has none
    NoOpTracerMetrics = _NoTracerMetrics  # type: ignore[assignment,misc]

__all__ = [
    "LEAN_SPANS",
    "LeanSpan",
    "LeanTracer",
    "LeanTracerProvider",
    "adoptable",
    "lean_spans_fit",
    "lean_spans_supported",
    "span_attributes",
]

LEAN_SPANS: Final = "otel.lean_spans"
_RANDOM: Final = int(getattr(TraceFlags, "RANDOM_TRACE_ID", 0))  # SDK 1.40+; 0: never set
_FLAGS: Final = {  # (sampled, random trace id) -> the span's trace flags, as the SDK sets them
    (sampled, random_id): TraceFlags(
        (TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT) | (_RANDOM if random_id else 0)
    )
    for sampled in (False, True)
    for random_id in (False, True)
}
_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})
_TRACE_ID_MAX: Final = 2**128 - 1
_SPAN_ID_MAX: Final = 2**64 - 1
# The shortcuts marked "measured" below are kept for their gain together (STYLE habit 13):
# benchmarks.wire, 2026-12-07, 3.3 % less server CPU per request (95 % interval 1.1-5.6 %;
# an earlier run 1.5 %, -1.1-4.2 %) than the plain constructor calls and SDK methods.
_SAMPLE: Final = Decision.RECORD_AND_SAMPLE  # measured: an enum member read once, not per span
_DROP: Final = Decision.DROP  # measured (and the samplers in tracing/__init__.py use both)
_init_lean: Final = LeanSpan.__init__  # measured: a class attribute read once


class LeanTracer(Tracer):
    """The SDK tracer with a cheaper ``start_span`` (same decisions, same spans)."""

    def start_span(
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[trace_api.Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        """The SDK's ``start_span``, building a :class:`LeanSpan`."""
        if links or not self._tracer_config.is_enabled:
            return super().start_span(
                name, context, kind, attributes, links, start_time,
                record_exception, set_status_on_exception,
            )  # fmt: skip
        parent = _parent_of(context)
        trace_id, span_id, random_id, valid = self._new_ids(parent)
        decide = getattr(self.sampler, "decide", None)
        if decide is not None:  # a sampler that needs only parent and id: no SamplingResult
            decision = decide(parent, trace_id)
            trace_state = parent.trace_state if parent is not None else None
            sampled_attributes = attributes or _EMPTY
        else:
            result = self.sampler.should_sample(context, trace_id, name, kind, attributes, ())
            decision, trace_state = result.decision, result.trace_state
            sampled_attributes = result.attributes or _EMPTY
        span_context = tuple.__new__(  # measured: what SpanContext(...) builds, without its call
            SpanContext,
            (
                trace_id,
                span_id,
                False,
                _FLAGS[decision is _SAMPLE, random_id],
                DEFAULT_TRACE_STATE if trace_state is None else trace_state,
                valid,
            ),
        )
        metrics = self._tracer_metrics  # the SDK's own span metrics, when switched on
        record_end_metrics = (
            None if type(metrics) is NoOpTracerMetrics else metrics.start_span(parent, decision)
        )
        if decision is _DROP:
            return trace_api.NonRecordingSpan(span_context)
        span = object.__new__(LeanSpan)  # measured: the SDK's __new__ only refuses its own Span
        _init_lean(
            span,
            name,
            span_context,
            parent,
            self,
            span_attributes(sampled_attributes, self._span_limits),
            kind,
            start_time if start_time is not None else time.time_ns(),
            record_end_metrics,
            record_exception,
            set_status_on_exception,
        )
        self.span_processor.on_start(span, context)  # measured: positional, not a keyword
        return span

    def _new_ids(self, parent: SpanContext | None) -> tuple[int, int, bool, bool]:
        """``(trace id, span id, whether the trace id is random, whether both are valid)``
        as the SDK makes them."""
        generator = self.id_generator
        if type(generator) is not RandomIdGenerator:
            span_id = generator.generate_span_id()
            if parent is None:
                random_id = bool(_RANDOM) and generator.is_trace_id_random()
                trace_id = generator.generate_trace_id()
            else:
                trace_id, random_id = parent.trace_id, bool(parent.trace_flags & _RANDOM)
            return trace_id, span_id, random_id, _valid(trace_id, span_id)
        # measured: the default generator's ids drawn here, without its calls (0 is redrawn)
        span_id = random.getrandbits(64) or generator.generate_span_id()
        if parent is None:
            return random.getrandbits(128) or generator.generate_trace_id(), span_id, True, True
        return parent.trace_id, span_id, bool(parent.trace_flags & _RANDOM), True


def _valid(trace_id: int, span_id: int) -> bool:
    """Whether ids from a generator of the user's make a valid span context."""
    return 0 < trace_id <= _TRACE_ID_MAX and 0 < span_id <= _SPAN_ID_MAX


_current_context: Final = current_context_getter()
_SPAN_KEY: Final = span_key()


def _parent_of(context: context_api.Context | None) -> SpanContext | None:
    """The valid span context of the span in ``context`` (else the current one), if any."""
    span: Any = (context if context is not None else _current_context()).get(_SPAN_KEY)
    if span is None:
        return None
    parent: SpanContext = span.get_span_context()
    return parent if parent.is_valid else None


class LeanTracerProvider(SdkTracerProvider):
    """The SDK provider whose tracers are :class:`LeanTracer` when the SDK is one this
    module knows (see :func:`lean_spans_supported`)."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace_api.Tracer:
        tracer = super().get_tracer(*args, **kwargs)
        if type(tracer) is not Tracer or not lean_spans_supported():
            return tracer
        tracers = getattr(self, "_tracers", None)  # the SDK's cache: one tracer per scope
        lock = getattr(self, "_tracers_lock", None)
        if not isinstance(tracers, dict) or lock is None:
            return _lean_copy(tracer)  # an SDK that keeps no cache
        with lock:  # the cached tracer is replaced by its lean copy, once
            scope = tracer._instrumentation_scope
            cached = tracers.get(scope)
            if type(cached) is not LeanTracer:
                cached = tracers[scope] = _lean_copy(tracer)
        return cached


def _lean_copy(tracer: Tracer) -> LeanTracer:
    """A new :class:`LeanTracer` with ``tracer``'s fields.  A new object, not ``tracer``
    re-classed: CPython's fast attribute reads (3.11+) key on the instance layout its
    class had when it was made, so a re-classed tracer read its fields through the slower
    dict lookup on every span (some 4,000 instructions per ``start_span``)."""
    lean: LeanTracer = object.__new__(LeanTracer)
    fields = vars(tracer)
    for name, value in fields.items():
        setattr(lean, name, value)
    if "_tracer_config" not in fields:  # SDKs before 1.41 (set, not vars(lean): see above)
        _fill_older_sdk(lean, fields)
    return lean


def _fill_older_sdk(lean: LeanTracer, fields: Mapping[str, Any]) -> None:
    """Give a tracer of an SDK before 1.41 what ``start_span`` and a lean span's ``end``
    read on the newer ones: a tracer config (1.40 asks its provider's configurator on
    every span, as the SDK does; 1.39 has none: always enabled), span metrics (none before
    1.40) and a processor with the ``_on_ending`` hook (none before 1.40)."""
    live = callable(getattr(lean, "_is_enabled", None))
    lean._tracer_config = _AskedEachTime(lean) if live else _ALWAYS_ENABLED
    if "_tracer_metrics" not in fields:
        lean._tracer_metrics = _NoTracerMetrics()  # type: ignore[assignment]
    if not hasattr(lean.span_processor, "_on_ending"):
        lean.span_processor = _WithoutEnding(lean.span_processor)  # type: ignore[assignment]


class _Enabled:
    """The tracer config of an SDK without configurators (before 1.40)."""

    is_enabled: Final = True


_ALWAYS_ENABLED: Final = _Enabled()


class _AskedEachTime:
    """The tracer config of SDK 1.40, which asks its provider's configurator per span."""

    __slots__ = ("_tracer",)

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    @property
    def is_enabled(self) -> bool:
        return bool(self._tracer._is_enabled())


class _WithoutEnding:
    """A span processor of an SDK before 1.40 as lean spans call it: its own ``on_start``
    and ``on_end`` (bound once), and an ``_on_ending`` hook that does nothing."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.on_start = inner.on_start
        self.on_end = inner.on_end

    def _on_ending(self, span: Span) -> None:
        """The ending hook newer SDKs call before ``on_end``; these have none."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _Reference(Span):
    """The SDK's own span constructor, for :func:`lean_spans_supported` to compare with."""


def _same_layout(reference: Span, lean: LeanSpan) -> bool:
    """Whether the lean span and its span context (built without their constructors)
    have the SDK's fields, and an ended lean span reads its plain attribute dict as the
    SDK reads its own mapping."""
    built = _span_context_of((5, 7, False, _FLAGS[True, False], DEFAULT_TRACE_STATE, True))
    made = SpanContext(5, 7, is_remote=False, trace_flags=_FLAGS[True, False])
    ours_only = {"_record_end_metrics"}  # lean spans keep it on SDKs without (before 1.40)
    return (
        set(vars(reference)) | ours_only == set(vars(lean)) | ours_only
        and "_record_end_metrics" in vars(lean)
        and type(lean._attributes) is dict
        and (dict(lean.attributes or {}), lean.dropped_attributes) == ({"a": 1}, 0)
        and built == made
        and (built.trace_id, built.span_id, built.is_valid) == (5, 7, True)
    )


def _span_context_of(fields: tuple[Any, ...]) -> SpanContext:
    """A span context built as ``start_span`` builds it (the probe's seam)."""
    built: SpanContext = tuple.__new__(SpanContext, fields)
    return built


def lean_spans_supported() -> bool:
    """Whether :class:`LeanSpan` fills exactly the fields the installed SDK's span has
    (probed once, as every fast path is)."""
    return decide(LEAN_SPANS, lean_spans_fit)


def lean_spans_fit() -> bool:
    """The probe behind :func:`lean_spans_supported`, run afresh."""
    try:
        limits = SpanLimits()
        context = SpanContext(1, 1, is_remote=False)
        resource = Resource.get_empty()
        reference = _Reference("probe", context, resource=resource, attributes={"a": 1})
        tracer = Tracer(
            ALWAYS_ON, resource, reference._span_processor, RandomIdGenerator(),  # type: ignore[arg-type]
            None, limits, None,  # type: ignore[arg-type]
        )  # fmt: skip
        lean = LeanSpan(
            "probe", context, None, tracer, span_attributes({"a": 1}, limits),
            SpanKind.INTERNAL, 1, None,
        )  # fmt: skip
        if not _same_layout(reference, lean):
            return False
        _lean_copy(tracer).start_span("probe", attributes={"a": 1}).end()  # its fields' names
        return True
    except Exception:  # an SDK we do not understand: keep its own path
        return False


register({LEAN_SPANS: lean_spans_fit})
