"""The OpenTelemetry SDK's and API's private names, each use behind a probe.

* ``otel.batch_export_hook``: the batch processors (spans and log records) keep their
  exporter and queue on an inner ``_batch_processor`` (SDK 1.39+); self-metrics wrap that
  exporter to count exported and failed items and read the queue's depth.  Public
  fallback: no self-metrics, the telemetry itself is untouched.
* ``otel.batch_drop_hook``: the inner processor reports a full queue's drops through a
  ``_metrics`` object whose ``drop_items`` takes ``(count, error_type)`` (SDK 1.45+);
  self-metrics count queue drops there.  Fallback: drops are not counted (1.39 and 1.40
  drop silently; in 1.41 to 1.44 the hook takes no reason, which ours passes on).
* ``otel.provider_processors``: a provider's span and log-record processors are listed
  on ``_active_span_processor._span_processors`` and
  ``_multi_log_record_processor._log_record_processors``.  Fallback: none are found.
* ``otel.processor_removal``: a span processor can be taken off a provider (under the
  list's ``_lock``), for ``testing.capture()``.  Fallback: it stays on.
* ``otel.unset_meter_provider``: the metrics API's placeholder provider (before any
  ``set_meter_provider``) is a ``_ProxyMeterProvider``.  Fallback: any provider that is
  not the SDK's counts as unset (the API then refuses an override with its own warning).
* ``otel.global_reset``: the API's set-once globals (tracer, meter and logger providers)
  can be reset, for ``testing.reset()``.  Fallback: they stay set.
* ``otel.suppress_keys``: the context keys of OpenTelemetry's
  ``suppress_instrumentation`` and ``suppress_http_instrumentation``
  (``_SUPPRESS_INSTRUMENTATION_KEY``, ``_SUPPRESS_HTTP_INSTRUMENTATION_KEY``), which
  exporters and contrib instrumentations set and read.  Fallback: keys of our own (our
  adapters still suppress one another, but not the exporters' own calls).
* ``otel.runtime_contextvar``: the API's default runtime context keeps the current
  context in one ``ContextVar`` (``_RUNTIME_CONTEXT._current_context``), so the hot path
  reads and sets it without ``context.get_current``/``attach``'s layers of calls.  The
  probe sets a context through the variable (in a copied context) and reads it back with
  the public ``get_current``.  Fallback: the public functions.
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
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Final

from ._probes import HoldingExporter, decide, register

__all__ = [
    "BATCH_DROP_HOOK",
    "BATCH_EXPORT_HOOK",
    "GLOBAL_RESET",
    "PROCESSOR_REMOVAL",
    "PROVIDER_PROCESSORS",
    "RESOURCE_IDENTITY",
    "RUNTIME_CONTEXTVAR",
    "SAMPLER_ROOT",
    "SDK_BATCH_LOGGER",
    "SUPPRESS_HTTP_INSTRUMENTATION_KEY",
    "SUPPRESS_INSTRUMENTATION_KEY",
    "SUPPRESS_KEYS",
    "UNSET_METER_PROVIDER",
    "batch_of",
    "current_context_getter",
    "drop_if_warned",
    "drop_quietly",
    "is_unset_meter_provider",
    "log_record_processors",
    "parent_based_root",
    "queue_depth",
    "remove_span_processor",
    "replace_batch_exporter",
    "replace_drop_hook",
    "replace_resource_attributes",
    "reset_global_logger_provider",
    "reset_global_providers",
    "runtime_context_var",
    "span_key",
    "span_processors",
]

BATCH_EXPORT_HOOK: Final = "otel.batch_export_hook"
BATCH_DROP_HOOK: Final = "otel.batch_drop_hook"
PROVIDER_PROCESSORS: Final = "otel.provider_processors"
SAMPLER_ROOT: Final = "otel.sampler_root"
RESOURCE_IDENTITY: Final = "otel.resource_identity"
PROCESSOR_REMOVAL: Final = "otel.processor_removal"
UNSET_METER_PROVIDER: Final = "otel.unset_meter_provider"
GLOBAL_RESET: Final = "otel.global_reset"
SUPPRESS_KEYS: Final = "otel.suppress_keys"
RUNTIME_CONTEXTVAR: Final = "otel.runtime_contextvar"


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
    """A span that meets a full queue is reported to the inner ``_metrics.drop_items``
    with the count first, that hook also takes ``(count, reason)``, and ``finish_items``
    exists to pass on.  The exporter holds the worker until three spans were offered to
    a queue of one."""
    from opentelemetry.sdk.trace.export import SpanExportResult

    started, release = threading.Event(), threading.Event()
    exporter = HoldingExporter(started, release, SpanExportResult.SUCCESS)
    processor = _bounded_processor(exporter)
    calls: list[tuple[Any, ...]] = []
    quiet = _Silence()  # the SDK warns of the full queue the probe makes on purpose; first,
    # so that the SDK's duplicate filter does not take it for the last warning and hold back
    # the next real one
    logging.getLogger(SDK_BATCH_LOGGER).filters.insert(0, quiet)
    try:
        batch = processor._batch_processor
        hook = batch._metrics
        if not callable(getattr(hook, "finish_items", None)) or not _takes_a_reason(hook):
            return False
        batch._metrics = _Recording(batch._metrics, calls)
        processor.on_end(_probe_span())
        if not started.wait(5):
            return False
        processor.on_end(_probe_span())  # waits in the queue
        processor.on_end(_probe_span())  # the queue is full: dropped
    finally:
        release.set()
        processor.shutdown()
        logging.getLogger(SDK_BATCH_LOGGER).removeFilter(quiet)
    return len(calls) == 1 and calls[0][:1] == (1,) and _reasons_only(calls[0][1:])


SDK_BATCH_LOGGER: Final = "opentelemetry.sdk._shared_internal"


class _Silence(logging.Filter):
    """Drops every record (for the probe's deliberate queue overflow)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


def _reasons_only(rest: tuple[Any, ...]) -> bool:
    return len(rest) <= 1 and all(isinstance(reason, str) for reason in rest)


def _takes_a_reason(hook: Any) -> bool:
    """Whether the SDK's own hook takes ``drop_items(count, reason)``, the form the
    self-metrics hook passes on."""
    try:
        inspect.signature(hook.drop_items).bind(1, "queue_full")
    except TypeError:
        return False
    return True


def _bounded_processor(exporter: Any) -> Any:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(
        exporter, max_queue_size=1, max_export_batch_size=1, schedule_delay_millis=60_000
    )


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
    ``drop_items(count, ...)`` reports drops (``wrap`` 's result must take and pass on
    whatever arguments the SDK gives, and for a full queue take the oldest items out
    itself with :func:`drop_oldest`, which :func:`drop_quietly` relies on); ``False``
    where drops cannot be seen."""
    if not decide(BATCH_DROP_HOOK, _drop_hook_works):
        return False
    batch._metrics = wrap(batch._metrics)
    _warned[batch] = -1.0
    return True


_SDK_WARNING_WINDOW_S: Final = 20.0
"""The SDK's duplicate filter shows its "Queue full" warning once per 20 s window (by
``time.time() // 20``); it builds every other one and then discards it."""

_warned: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
"""The batches whose drop hook :func:`replace_drop_hook` replaced, each with the window
in which the SDK last warned of its full queue."""


def drop_quietly(batch: Any) -> bool:
    """Make room in ``batch`` 's full queue without the SDK's warning, once the SDK has
    given it in this window; call it under the lock the item is then queued under.

    The replaced drop hook takes the oldest item out and counts it, so the item that
    follows is queued as into a queue with room: without the logging record the SDK
    would build for its warning, only for its duplicate filter to discard it (about
    13 µs of each dropped item's 22 µs).  ``False``, for the SDK's own path (drop,
    warning, count), where the queue has room, the processor is shut down or not yet
    reset in a forked child, or :func:`drop_if_warned` says so."""
    if len(batch._queue) < batch._max_queue_size or batch._shutdown:
        return False
    return batch._pid == os.getpid() and drop_if_warned(batch)


def drop_if_warned(batch: Any) -> bool:
    """:func:`drop_quietly` for a caller that has seen ``batch`` 's queue full in a
    running processor of this process: ``False`` where the hook is not ours or the
    window's first warning is due (the SDK's path gives it)."""
    window = _warned.get(batch)
    if window is None:
        return False
    now = time.time() // _SDK_WARNING_WINDOW_S
    if now != window:
        _warned[batch] = now
        return False
    batch._metrics.drop_items(1)
    return True


def queue_depth(batch: Any) -> int:
    """How many items wait in ``batch`` 's queue."""
    return len(batch._queue)


def drop_oldest(batch: Any) -> int:
    """Take the oldest item out of ``batch`` 's queue; 1, or 0 when it was empty already.

    The drop hook calls it when the queue is full, so the append that follows never
    evicts an item silently: the count is what was removed (the SDK counts a drop when
    it saw the queue full, even if its worker emptied it before the append)."""
    try:
        batch._queue.pop()  # the oldest items are at the right end
    except IndexError:
        return 0
    return 1


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


def _removal_works() -> bool:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider(shutdown_on_exit=False)
    kept, removed = (SimpleSpanProcessor(InMemorySpanExporter()) for _ in range(2))
    provider.add_span_processor(kept)
    provider.add_span_processor(removed)
    _remove(provider, removed)
    return tuple(_span_processors(provider)) == (kept,)


def _remove(provider: Any, processor: object) -> None:
    multi = provider._active_span_processor
    with multi._lock:
        multi._span_processors = tuple(p for p in multi._span_processors if p is not processor)


def remove_span_processor(provider: object, processor: object) -> bool:
    """Take ``processor`` off an SDK ``TracerProvider`` (the SDK has no public way);
    ``False`` where it stays (it then keeps receiving spans)."""
    if not decide(PROCESSOR_REMOVAL, _removal_works):
        return False
    _remove(provider, processor)
    return True


# --- API globals --------------------------------------------------------------------------


def _proxy_class_known() -> bool:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.metrics._internal import _ProxyMeterProvider

    return issubclass(_ProxyMeterProvider, MeterProvider)


def is_unset_meter_provider(provider: object) -> bool:
    """Whether ``provider`` (from ``metrics.get_meter_provider()``) is the API's placeholder,
    so that ``set_meter_provider`` takes effect."""
    if decide(UNSET_METER_PROVIDER, _proxy_class_known):
        from opentelemetry.metrics._internal import _ProxyMeterProvider

        return isinstance(provider, _ProxyMeterProvider)
    from opentelemetry.sdk.metrics import MeterProvider

    return not isinstance(provider, MeterProvider)


def _reset_globals() -> None:
    from opentelemetry import trace
    from opentelemetry._logs import _internal as logs_api
    from opentelemetry.metrics import _internal as metrics_api
    from opentelemetry.util._once import Once

    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    metrics_api._METER_PROVIDER_SET_ONCE = Once()
    metrics_api._METER_PROVIDER = None
    logs_api._LOGGER_PROVIDER_SET_ONCE = Once()
    logs_api._LOGGER_PROVIDER = None


def _globals_reset() -> bool:
    from opentelemetry import trace
    from opentelemetry._logs import _internal as logs_api
    from opentelemetry.metrics import _internal as metrics_api
    from opentelemetry.util._once import Once

    names = (
        (trace, "_TRACER_PROVIDER_SET_ONCE"),
        (metrics_api, "_METER_PROVIDER_SET_ONCE"),
        (logs_api, "_LOGGER_PROVIDER_SET_ONCE"),
    )
    return all(type(getattr(module, name, None)) is Once for module, name in names)


def reset_global_logger_provider() -> bool:
    """Let the API's logger provider alone be set again; ``False`` where it cannot be."""
    if not decide(GLOBAL_RESET, _globals_reset):
        return False
    from opentelemetry._logs import _internal as logs_api
    from opentelemetry.util._once import Once

    logs_api._LOGGER_PROVIDER_SET_ONCE = Once()
    logs_api._LOGGER_PROVIDER = None
    return True


def reset_global_providers() -> bool:
    """Let the API's tracer, meter and logger providers be set again (``testing.reset``);
    ``False`` where they cannot be."""
    if not decide(GLOBAL_RESET, _globals_reset):
        return False
    _reset_globals()
    return True


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


# --- the runtime context ------------------------------------------------------------------


def _runtime_var() -> Any:
    from opentelemetry import context

    return context._RUNTIME_CONTEXT._current_context  # type: ignore[attr-defined]


def _runtime_var_works() -> bool:
    import contextvars

    from opentelemetry import context

    var = _runtime_var()
    if not isinstance(var, contextvars.ContextVar):
        return False

    def set_and_read() -> bool:
        mine = context.set_value(context.create_key("unified_obs.probe"), True)
        var.set(mine)
        return context.get_current() is mine

    return contextvars.copy_context().run(set_and_read)


def runtime_context_var() -> Any | None:
    """The ``ContextVar`` holding OpenTelemetry's current context, where the probe found
    the API's default runtime context; ``None``: use the public functions."""
    return _runtime_var() if decide(RUNTIME_CONTEXTVAR, _runtime_var_works) else None


def current_context_getter() -> Callable[[], Any]:
    """The hot-path form of ``context.get_current``: the runtime context variable's
    ``get`` where the probe found it, else the public function."""
    from opentelemetry import context

    var = runtime_context_var()
    return var.get if var is not None else context.get_current


def span_key() -> str:
    """The one key ``trace.set_span_in_context`` puts a span under (public API only)."""
    from opentelemetry import context, trace

    (key,) = trace.set_span_in_context(trace.INVALID_SPAN, context.Context())
    return key


# --- suppressing instrumentation ----------------------------------------------------------

_SUPPRESS_NAMES: Final = ("_SUPPRESS_INSTRUMENTATION_KEY", "_SUPPRESS_HTTP_INSTRUMENTATION_KEY")


def _suppress_keys_known() -> bool:
    """Both keys are context keys: a value set under each is read back."""
    from opentelemetry import context

    keys = [getattr(context, name, None) for name in _SUPPRESS_NAMES]
    if not all(isinstance(key, str) for key in keys):
        return False
    ctx = context.get_current()
    for key in keys:
        ctx = context.set_value(str(key), True, ctx)
    return all(context.get_value(str(key), ctx) is True for key in keys)


def _suppress_key(name: str, own: str) -> str:
    from opentelemetry import context

    if decide(SUPPRESS_KEYS, _suppress_keys_known):
        return str(getattr(context, name))
    return context.create_key(own)


SUPPRESS_INSTRUMENTATION_KEY: Final = _suppress_key(
    "_SUPPRESS_INSTRUMENTATION_KEY", "unified_obs.suppress_instrumentation"
)
"""Set in a context (to any true value): instrumentation makes no telemetry there."""
SUPPRESS_HTTP_INSTRUMENTATION_KEY: Final = _suppress_key(
    "_SUPPRESS_HTTP_INSTRUMENTATION_KEY", "unified_obs.suppress_http_instrumentation"
)
"""Set in a context: HTTP client instrumentation makes no telemetry there."""


register(
    {
        BATCH_EXPORT_HOOK: _export_hook_works,
        BATCH_DROP_HOOK: _drop_hook_works,
        PROVIDER_PROCESSORS: _processors_are_listed,
        SAMPLER_ROOT: _root_is_kept,
        RESOURCE_IDENTITY: _attributes_are_replaceable,
        PROCESSOR_REMOVAL: _removal_works,
        UNSET_METER_PROVIDER: _proxy_class_known,
        GLOBAL_RESET: _globals_reset,
        SUPPRESS_KEYS: _suppress_keys_known,
        RUNTIME_CONTEXTVAR: _runtime_var_works,
    }
)
