"""The lean span: an SDK ``Span`` built from attributes that are already clean.

:class:`LeanSpan` fills exactly the SDK span's fields (``opentelemetry_tracer.lean_spans_supported``
checks), creates its event and link lists on first use, keeps clean primitive
attributes in a plain dict (the SDK's ``BoundedAttributes`` is made from it the first
time a value needs the SDK's validator), and hands processors the ended span itself
instead of a copy.  Every other case goes through the SDK's own methods.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Iterable, Mapping
from time import time_ns
from typing import Any, Final

from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanLimits, Tracer
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import SpanContext, SpanKind
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util import types

__all__ = ["LeanSpan", "adoptable", "span_attributes"]

_UNSET: Final = Status(StatusCode.UNSET)
_PRIMITIVES: Final = frozenset((str, bool, int, float))
_logger: Final = logging.getLogger("opentelemetry.sdk.trace")
_NOTHING: Final[BoundedList[Any]] = BoundedList(0)
"""The events and links of a span that has none: shared, never appended to."""
_ENDED: Final = threading.RLock()
"""The lock of every ended lean span.  A span gives up its own lock when it ends, so
one waiting in an export queue keeps one garbage-collected object fewer alive; what
an ended span still does under its lock is warn and return.  Reentrant: a warning's
log handler may touch another ended span."""


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
        attributes: dict[str, Any] | BoundedAttributes,
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
        current = self._attributes
        limit = self._limits.max_span_attributes
        if (
            type(current) is not dict
            or (limit is not None and len(current) + len(attributes) > limit)
            or not adoptable(attributes, self._limits)
            or not self._store(attributes.items())
        ):
            self._validated()
            super().set_attributes(attributes)

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        """The SDK's ``set_attribute``; a clean pair within the limits is stored as it is."""
        current = self._attributes
        limits = self._limits
        max_len = limits.max_span_attribute_length
        if not (
            type(current) is dict
            and type(key) is str
            and key
            and type(value) in _PRIMITIVES
            and (limits.max_span_attributes is None or len(current) < limits.max_span_attributes)
            and (max_len is None or type(value) is not str or len(value) <= max_len)
            and self._store(((key, value),))
        ):
            self._validated()
            super().set_attribute(key, value)

    def _store(self, items: Iterable[tuple[str, types.AttributeValue]]) -> bool:
        """Store clean ``items`` as they are, unless the span has ended; ``False`` when
        the attributes went to the SDK's mapping meanwhile (another thread)."""
        with self._lock:
            current = self._attributes
            if self._end_time is not None:
                _logger.warning("Setting attribute on ended span.")
                return True
            if type(current) is not dict:
                return False
            for key, value in items:
                current.pop(key, None)  # a key set again moves last, as in the SDK
                current[key] = value
        return True

    def _validated(self) -> None:
        """From now on keep the attributes in the SDK's validating mapping."""
        with self._lock:
            current = self._attributes
            if type(current) is dict:
                limits = self._limits
                self._attributes = BoundedAttributes(
                    limits.max_span_attributes, current, False, limits.max_span_attribute_length
                )

    def end(self, end_time: int | None = None) -> None:
        """The SDK's ``end``, handing processors the span itself."""
        with self._lock:
            if self._end_time is not None:
                _logger.warning("Calling end() on an ended span.")
                return
            self._end_time = end_time if end_time is not None else time_ns()
            if type(self._attributes) is not dict:
                self._attributes._immutable = True  # type: ignore[union-attr]
            self._lock = _ENDED  # type: ignore[assignment]
        if self._record_end_metrics:
            self._record_end_metrics()
        processor = self._span_processor
        processor._on_ending(self)
        processor.on_end(self)

    def update_name(self, name: str) -> None:  # measured: see opentelemetry_tracer._SAMPLE
        """The SDK's ``update_name``, without its decorator's extra call."""
        with self._lock:
            if self._end_time is None:
                self._name = name
                return
        _logger.warning("Tried calling update_name on an ended span.")

    def get_span_context(self) -> SpanContext:  # measured: see opentelemetry_tracer._SAMPLE
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


def span_attributes(
    attributes: Mapping[str, Any], limits: SpanLimits
) -> dict[str, Any] | BoundedAttributes:
    """The span's attribute mapping: a copy of ``attributes`` when the SDK's validator
    would keep them as they are, else the SDK's validated mapping."""
    if adoptable(attributes, limits):
        return dict(attributes)
    maxlen, max_value_len = limits.max_span_attributes, limits.max_span_attribute_length
    return BoundedAttributes(maxlen, attributes, False, max_value_len)
