"""Spans at a fraction of the SDK's cost, from the tracer provider ``setup()`` builds.

The SDK's ``Tracer.start_span`` spends about half its time on bookkeeping that
instrumentation spans do not need: every attribute value goes through the generic
validator (one ``isinstance`` cascade per value, a lock per key), and the new span
builds its attribute mapping through the same path.  :class:`LeanTracer` does the
same work in the same order -- the provider's sampler, id generator, limits,
resource, tracer config, internal metrics and span processors -- but adopts
attribute mappings whose keys are non-empty strings and whose values are
``str``/``bool``/``int``/``float`` within the length limit as they are, which is
exactly what the validator would have produced.  Anything else (sequences, odd
types, too long or too many values, links) takes the SDK's own path.

A sampler whose decision depends on the parent span alone (and keeps the parent's trace
state and the attributes) may say so with a ``decide(parent) -> Decision`` attribute,
as ``tracing.ClosableSampler`` does for ``always_on`` and ``parentbased_always_on``;
the lean tracer then skips building a ``SamplingResult``.

Spans are SDK ``Span`` objects: processors, exporters and user code see nothing new.
The lean constructor fills the same fields as the SDK's; :func:`lean_spans_supported`
compares the two field sets once, so an SDK release that changes them switches the
lean path off instead of producing broken spans.
"""

from __future__ import annotations

import copy
import functools
import logging
import random
import threading
from collections.abc import Iterable, Mapping, Sequence
from time import time_ns
from types import MappingProxyType
from typing import Any, Final

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanLimits, Tracer
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util import types

from .context import SPAN_KEY, current_otel_context

try:  # the SDK's own span metrics (1.40+); a no-op unless switched on
    from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
except ImportError:  # pragma: no cover - an SDK without them: always ask
    NoOpTracerMetrics = None  # type: ignore[assignment,misc]

__all__ = [
    "LeanSpan",
    "LeanTracer",
    "LeanTracerProvider",
    "lean_spans_supported",
    "span_attributes",
]

_UNSET: Final = Status(StatusCode.UNSET)
_PRIMITIVES: Final = frozenset((str, bool, int, float))
_RANDOM: Final = int(getattr(TraceFlags, "RANDOM_TRACE_ID", 0))  # SDK 1.40+; 0: never set
_FLAGS: Final = {  # (sampled, random trace id) -> the span's trace flags, as the SDK sets them
    (sampled, random): TraceFlags(
        (TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT) | (_RANDOM if random else 0)
    )
    for sampled in (False, True)
    for random in (False, True)
}
_getrandbits: Final = random.getrandbits
_logger: Final = logging.getLogger("opentelemetry.sdk.trace")
_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})
_NOTHING: Final[BoundedList[Any]] = BoundedList(0)
"""The events and links of a span that has none: shared, never appended to."""


def adoptable(attributes: Mapping[str, Any], limits: SpanLimits) -> bool:
    """Whether the SDK's validator would keep ``attributes`` exactly as they are."""
    if limits.max_span_attributes is not None and len(attributes) > limits.max_span_attributes:
        return False
    max_len = limits.max_span_attribute_length
    for key, value in attributes.items():
        kind = type(value)
        if kind not in _PRIMITIVES or type(key) is not str or not key:
            return False
        if kind is str and max_len is not None and len(value) > max_len:
            return False
    return True


class LeanSpan(Span):
    """An SDK span whose constructor takes its attributes ready-made."""

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        tracer: Tracer,
        attributes: BoundedAttributes,
        kind: SpanKind,
        start_time: int,
        record_end_metrics: Any,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> None:
        # ReadableSpan's fields
        self._name = name
        self._context = context
        self._kind = kind
        self._instrumentation_info = tracer.instrumentation_info
        self._instrumentation_scope = tracer._instrumentation_scope
        self._parent = parent
        self._start_time: int | None = start_time
        self._end_time: int | None = None
        self._resource = tracer.resource
        self._status = _UNSET
        # Span's fields
        self._sampler = tracer.sampler
        self._trace_config = None
        self._record_exception = record_exception
        self._set_status_on_exception = set_status_on_exception
        self._span_processor = tracer.span_processor
        self._limits = tracer._span_limits
        self._lock = threading.Lock()
        self._attributes = attributes
        self._events = self._links = _NOTHING  # made on the first event or link
        self._record_end_metrics = record_end_metrics

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        """The SDK's ``set_attributes``; clean primitive values are stored as they are."""
        bounded: BoundedAttributes = self._attributes  # type: ignore[assignment]
        current = bounded._dict
        limit = self._limits.max_span_attributes
        fits = limit is None or len(current) + len(attributes) <= limit
        if fits and adoptable(attributes, self._limits):
            self._store(current, bounded, attributes.items())
        else:
            super().set_attributes(attributes)

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        """The SDK's ``set_attribute``; a clean pair within the limits is stored as it is."""
        bounded: BoundedAttributes = self._attributes  # type: ignore[assignment]
        current = bounded._dict
        limits = self._limits
        max_len = limits.max_span_attribute_length
        if not (
            type(key) is str
            and key
            and type(value) in _PRIMITIVES
            and (limits.max_span_attributes is None or len(current) < limits.max_span_attributes)
            and (max_len is None or type(value) is not str or len(value) <= max_len)
        ):
            super().set_attribute(key, value)
        else:
            self._store(current, bounded, ((key, value),))

    def _store(
        self,
        current: dict[str, Any],
        bounded: BoundedAttributes,
        items: Iterable[tuple[str, types.AttributeValue]],
    ) -> None:
        """Store clean ``items`` as they are, unless the span has ended."""
        with self._lock:
            if self._end_time is not None:
                _logger.warning("Setting attribute on ended span.")
                return
            with bounded._lock:
                for key, value in items:
                    current.pop(key, None)  # a key set again moves last, as in the SDK
                    current[key] = value

    def update_name(self, name: str) -> None:
        """The SDK's ``update_name``, without its decorator's extra call."""
        with self._lock:
            if self._end_time is None:
                self._name = name
                return
        _logger.warning("Tried calling update_name on an ended span.")

    def get_span_context(self) -> SpanContext:
        """The span's context (the SDK's, without its ``typing.cast`` call)."""
        return self._context  # type: ignore[return-value]

    def _readable_span(self) -> ReadableSpan:
        """The ended span itself: it is immutable from ``end()`` on, so processors and
        exporters can read it without the SDK's copy."""
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> ReadableSpan:
        """A deep copy of the span's data, as the SDK's exported ``ReadableSpan`` gives
        (a live span's lock cannot be copied)."""
        return copy.deepcopy(super()._readable_span(), memo)

    def _add_event(self, event: Event) -> None:
        with self._lock:
            if self._events is _NOTHING:
                self._events = BoundedList(self._limits.max_events)
        super()._add_event(event)

    def _add_link(self, link: trace_api.Link) -> None:
        with self._lock:
            if self._links is _NOTHING:
                self._links = BoundedList(self._limits.max_links)
        super()._add_link(link)


def span_attributes(attributes: Mapping[str, Any], limits: SpanLimits) -> BoundedAttributes:
    """The span's attribute mapping: ``attributes`` adopted as they are when the SDK's
    validator would keep them unchanged, else validated by it."""
    maxlen, max_value_len = limits.max_span_attributes, limits.max_span_attribute_length
    if not adoptable(attributes, limits):
        return BoundedAttributes(maxlen, attributes, False, max_value_len)
    bounded = BoundedAttributes(maxlen, None, False, max_value_len)
    bounded._dict = dict(attributes)
    return bounded


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
        if links or not self._tracer_config.is_enabled:
            return super().start_span(
                name, context, kind, attributes, links, start_time,
                record_exception, set_status_on_exception,
            )  # fmt: skip
        parent = _parent_of(context)
        trace_id, span_id, random = self._new_ids(parent)
        decide = getattr(self.sampler, "decide", None)
        if decide is not None:  # a sampler that needs only the parent: no SamplingResult
            decision = decide(parent)
            trace_state = parent.trace_state if parent is not None else None
            sampled_attributes = attributes or _EMPTY
        else:
            result = self.sampler.should_sample(context, trace_id, name, kind, attributes, ())
            decision, trace_state = result.decision, result.trace_state
            sampled_attributes = result.attributes or _EMPTY
        span_context = SpanContext(
            trace_id,
            span_id,
            is_remote=False,
            trace_flags=_FLAGS[decision is Decision.RECORD_AND_SAMPLE, random],
            trace_state=trace_state,
        )
        metrics = self._tracer_metrics  # the SDK's own span metrics, when switched on
        record_end_metrics = (
            None if type(metrics) is NoOpTracerMetrics else metrics.start_span(parent, decision)
        )
        if decision is Decision.DROP:
            return trace_api.NonRecordingSpan(span_context)
        span = LeanSpan(
            name,
            span_context,
            parent,
            self,
            span_attributes(sampled_attributes, self._span_limits),
            kind,
            start_time if start_time is not None else time_ns(),
            record_end_metrics,
            record_exception,
            set_status_on_exception,
        )
        self.span_processor.on_start(span, parent_context=context)
        return span

    def _new_ids(self, parent: SpanContext | None) -> tuple[int, int, bool]:
        """``(trace id, span id, whether the trace id is random)`` as the SDK makes them;
        the default random generator's ids are drawn here, without its two calls."""
        generator = self.id_generator
        if type(generator) is not RandomIdGenerator:
            span_id = generator.generate_span_id()
            if parent is None:
                random = bool(_RANDOM) and generator.is_trace_id_random()
                return generator.generate_trace_id(), span_id, random
            return parent.trace_id, span_id, bool(parent.trace_flags & _RANDOM)
        span_id = _getrandbits(64) or generator.generate_span_id()  # 0 is invalid: redraw
        if parent is None:
            return _getrandbits(128) or generator.generate_trace_id(), span_id, True
        return parent.trace_id, span_id, bool(parent.trace_flags & _RANDOM)


def _parent_of(context: context_api.Context | None) -> SpanContext | None:
    """The valid span context of the span in ``context`` (else the current one), if any."""
    span: Any = (context if context is not None else current_otel_context()).get(SPAN_KEY)
    if span is None:
        return None
    parent: SpanContext = span.get_span_context()
    return parent if parent.is_valid else None


class LeanTracerProvider(SdkTracerProvider):
    """The SDK provider whose tracers are :class:`LeanTracer` when the SDK is one this
    module knows (see :func:`lean_spans_supported`)."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace_api.Tracer:
        tracer = super().get_tracer(*args, **kwargs)
        if type(tracer) is Tracer and lean_spans_supported():
            # Same instance layout (LeanTracer adds only methods), and the provider's own
            # cache keeps returning this very object for the scope.
            tracer.__class__ = LeanTracer
        return tracer


class _Reference(Span):
    """The SDK's own span constructor, for :func:`lean_spans_supported` to compare with."""


@functools.cache
def lean_spans_supported() -> bool:
    """Whether :class:`LeanSpan` fills exactly the fields the installed SDK's span has."""
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
        if set(vars(reference)) != set(vars(lean)):
            return False
        tracer.__class__ = LeanTracer  # and the tracer's fields are where start_span looks
        tracer.start_span("probe", attributes={"a": 1}).end()
        return True
    except Exception:  # an SDK we do not understand: keep its own path
        return False
