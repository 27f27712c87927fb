"""The OpenTelemetry SDK's and API's private names, each use behind a probe.

* ``otel.batch_export_hook``: the batch processors (spans and log records) keep their
  exporter and queue on an inner ``_batch_processor`` (SDK 1.39+); self-metrics wrap that
  exporter to count exported and failed items and read the queue's depth.  Public
  fallback: no self-metrics, the telemetry itself is untouched.
* ``otel.batch_drop_hook``: the inner processor reports drops through a ``_metrics``
  object whose ``drop_items(count, error_type)`` is called with the count first (SDK
  1.41+); self-metrics count queue drops there.  Fallback: drops are not counted (1.39
  and 1.40 drop silently).
* ``otel.provider_processors``: a provider's span and log-record processors are listed
  on ``_active_span_processor._span_processors`` and
  ``_multi_log_record_processor._log_record_processors``.  Fallback: none are found.
* ``otel.sampler_root``: ``ParentBased`` keeps its root sampler on ``_root``.  Fallback:
  the sampler is treated as opaque (the lean tracer asks ``should_sample``).
* ``otel.resource_identity``: a ``Resource`` keeps its attributes on ``_attributes``, so a
  forked child can give every resource already built its own identity in place.
  Fallback: resources built before a fork keep the parent's instance id.

Each probe runs the real SDK objects once (a processor, a provider, a sampler, a resource)
and says no when a name, a signature or the behaviour differs.
"""

from __future__ import annotations

import collections
import inspect
from collections.abc import Callable, Sequence
from typing import Any, Final

from ._probes import decide, register

__all__ = [
    "BATCH_DROP_HOOK",
    "BATCH_EXPORT_HOOK",
    "PROVIDER_PROCESSORS",
    "RESOURCE_IDENTITY",
    "SAMPLER_ROOT",
    "batch_of",
    "log_record_processors",
    "parent_based_root",
    "queue_depth",
    "replace_batch_exporter",
    "replace_drop_hook",
    "replace_resource_attributes",
    "span_processors",
]

BATCH_EXPORT_HOOK: Final = "otel.batch_export_hook"
BATCH_DROP_HOOK: Final = "otel.batch_drop_hook"
PROVIDER_PROCESSORS: Final = "otel.provider_processors"
SAMPLER_ROOT: Final = "otel.sampler_root"
RESOURCE_IDENTITY: Final = "otel.resource_identity"


# --- batch processors -------------------------------------------------------------------


def _probe_processor() -> tuple[Any, Any]:
    """A real batch span processor over an in-memory exporter, and that exporter."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    return BatchSpanProcessor(exporter, schedule_delay_millis=60_000), exporter


def _probe_span() -> Any:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext, TraceFlags

    return ReadableSpan("probe", SpanContext(1, 1, False, TraceFlags(TraceFlags.SAMPLED)))


def _export_hook_works() -> bool:
    """A wrapper put in place of the inner exporter sees the span a flush exports, and the
    queue is a deque whose length is the number of waiting spans."""
    processor, exporter = _probe_processor()
    seen: list[int] = []
    try:
        batch = processor._batch_processor
        if batch._exporter is not exporter or type(batch._queue) is not collections.deque:
            return False
        batch._exporter = _Forwarding(exporter, seen)
        processor.on_end(_probe_span())
        waiting = len(batch._queue)
        flushed = processor.force_flush(5_000)
        return (
            bool(flushed)
            and waiting == 1
            and seen == [1]
            and len(exporter.get_finished_spans()) == 1
        )
    finally:
        processor.shutdown()


def _drop_hook_works() -> bool:
    """After shutdown, a span is reported to the inner ``_metrics.drop_items`` with its
    count first and a text reason, and ``finish_items`` exists to pass on."""
    processor, _ = _probe_processor()
    calls: list[tuple[Any, ...]] = []
    try:
        batch = processor._batch_processor
        hook = batch._metrics
        parameters = list(inspect.signature(hook.drop_items).parameters)
        if parameters[:1] != ["count"] or not callable(getattr(hook, "finish_items", None)):
            return False
        batch._metrics = _Recording(hook, calls)
    finally:
        processor.shutdown()
    processor.on_end(_probe_span())
    return bool(calls) and calls[0][:1] == (1,) and all(isinstance(a, str) for a in calls[0][1:])


class _Forwarding:
    """An exporter that notes each batch's size and passes it on."""

    def __init__(self, inner: Any, seen: list[int]) -> None:
        self.inner, self.seen = inner, seen

    def export(self, batch: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
        self.seen.append(len(batch))
        return self.inner.export(batch, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _Recording:
    """A processor-metrics hook that notes each ``drop_items`` call and passes it on."""

    def __init__(self, inner: Any, calls: list[tuple[Any, ...]]) -> None:
        self.inner, self.calls = inner, calls

    def drop_items(self, *args: Any) -> None:
        self.calls.append(args)
        self.inner.drop_items(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def batch_of(processor: object) -> Any | None:
    """The inner batch worker of an SDK ``BatchSpanProcessor`` or
    ``BatchLogRecordProcessor`` when the export hook is known to work; else ``None``."""
    if not decide(BATCH_EXPORT_HOOK, _export_hook_works):
        return None
    return getattr(processor, "_batch_processor", None)


def replace_batch_exporter(batch: Any, wrap: Callable[[Any], Any]) -> None:
    """Put ``wrap(exporter)`` in place of ``batch`` 's exporter (see :func:`batch_of`)."""
    batch._exporter = wrap(batch._exporter)


def replace_drop_hook(batch: Any, wrap: Callable[[Any], Any]) -> bool:
    """Put ``wrap(hook)`` in place of ``batch`` 's processor-metrics hook, whose
    ``drop_items(count, error_type)`` reports drops; ``False`` where drops cannot be seen."""
    if not decide(BATCH_DROP_HOOK, _drop_hook_works):
        return False
    batch._metrics = wrap(batch._metrics)
    return True


def queue_depth(batch: Any) -> int:
    """How many items wait in ``batch`` 's queue."""
    return len(batch._queue)


# --- providers ----------------------------------------------------------------------------


def _processors_are_listed() -> bool:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    tracer_provider = TracerProvider(shutdown_on_exit=False)
    span_processor = SimpleSpanProcessor(InMemorySpanExporter())
    tracer_provider.add_span_processor(span_processor)
    logger_provider = LoggerProvider(shutdown_on_exit=False)
    listed = tuple(_span_processors(tracer_provider)) == (span_processor,)
    return listed and tuple(_log_record_processors(logger_provider)) == ()


def _span_processors(provider: Any) -> Sequence[Any]:
    return provider._active_span_processor._span_processors  # type: ignore[no-any-return]


def _log_record_processors(provider: Any) -> Sequence[Any]:
    return provider._multi_log_record_processor._log_record_processors  # type: ignore[no-any-return]


def span_processors(provider: object) -> tuple[Any, ...]:
    """The span processors added to an SDK ``TracerProvider`` (empty when unknown)."""
    if not decide(PROVIDER_PROCESSORS, _processors_are_listed):
        return ()
    return tuple(getattr(getattr(provider, "_active_span_processor", None), "_span_processors", ()))


def log_record_processors(provider: object) -> tuple[Any, ...]:
    """The log-record processors added to an SDK ``LoggerProvider`` (empty when unknown)."""
    if not decide(PROVIDER_PROCESSORS, _processors_are_listed):
        return ()
    multi = getattr(provider, "_multi_log_record_processor", None)
    return tuple(getattr(multi, "_log_record_processors", ()))


# --- samplers and resources ---------------------------------------------------------------


def _root_is_kept() -> bool:
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    root = TraceIdRatioBased(0.25)
    return getattr(ParentBased(root), "_root", None) is root


def parent_based_root(sampler: object) -> object | None:
    """The root sampler of a ``ParentBased`` sampler, or ``None`` when it cannot be read."""
    if not decide(SAMPLER_ROOT, _root_is_kept):
        return None
    return getattr(sampler, "_root", None)


def _attributes_are_replaceable() -> bool:
    from opentelemetry.sdk.resources import Resource

    resource, other = Resource({"a": "1"}), Resource({"a": "2"})
    resource._attributes = other._attributes
    return resource.attributes.get("a") == "2"


def replace_resource_attributes(resource: Any, attributes: Any) -> bool:
    """Give ``resource`` the attributes of ``attributes`` (a ``Resource``) in place;
    ``False`` where a resource cannot be changed."""
    if not decide(RESOURCE_IDENTITY, _attributes_are_replaceable):
        return False
    resource._attributes = attributes._attributes
    return True


register(
    {
        BATCH_EXPORT_HOOK: _export_hook_works,
        BATCH_DROP_HOOK: _drop_hook_works,
        PROVIDER_PROCESSORS: _processors_are_listed,
        SAMPLER_ROOT: _root_is_kept,
        RESOURCE_IDENTITY: _attributes_are_replaceable,
    }
)
