"""The log pipeline: one processor chain for structlog and stdlib ``logging``, written
as one line per record to stdout and, when configured, exported as OTel log records.

Loggers from :func:`get_logger` are cheap no-ops until ``setup()`` and after
``shutdown()``.  This is the only module that touches OpenTelemetry's
underscored logs API.
"""

from __future__ import annotations

import logging
import sys
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

import structlog
from structlog.typing import FilteringBoundLogger, Processor

from .._compat.opentelemetry import reset_global_logger_provider
from ..config import Settings
from ..redact import Redactor
from . import _stdlib_bridge
from . import processors as proc
from ._bound_logger import NOOP, direct_methods, safe_bound_logger
from ._stdout_sink import LineSink

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource

    from .._compat.opentelemetry_logs import LoggerProvider

__all__ = [
    "LogPipeline",
    "close",
    "configure",
    "get_logger",
    "live_pipeline",
    "reset",
    "reset_otel_global",
]

_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_CACHED_METHODS: Final = (  # the sync level methods are direct (see direct_methods)
    "log",
    "adebug",
    "ainfo",
    "awarning",
    "aerror",
    "aexception",
    "acritical",
)


@dataclass(slots=True)
class LogPipeline:
    """The live chain: ``processors`` is mutated in place, so every logger sees changes."""

    processors: list[Processor]
    level: int
    sink: LineSink
    provider: LoggerProvider | None

    def insert_before_render(self, processor: Processor) -> None:
        """Add ``processor`` just before the renderer (used by ``testing.capture``)."""
        self.processors.insert(len(self.processors) - 1, processor)

    def remove(self, processor: Processor) -> None:
        """Remove a processor added with :meth:`insert_before_render`."""
        if processor in self.processors:
            self.processors.remove(processor)


_pipeline: LogPipeline | None = None
_proxies: weakref.WeakSet[_LoggerProxy] = weakref.WeakSet()
_saved_structlog: dict[str, Any] | None = None


class _LoggerProxy:
    """What :func:`get_logger` returns: resolves to the live pipeline on first use and
    caches the level methods on itself; ``setup``/``shutdown`` drop the cache."""

    __slots__ = ("__dict__", "__weakref__", "_initial")

    def __init__(self, initial: dict[str, Any]) -> None:
        self._initial = initial
        _proxies.add(self)

    def _resolve(self) -> FilteringBoundLogger:
        """A bound logger of the live pipeline, its methods cached on this proxy."""
        pipeline = _pipeline
        bound = self._bound()
        if pipeline is not None:
            for name in _CACHED_METHODS:
                self.__dict__[name] = getattr(bound, name)
            self.__dict__.update(
                direct_methods(pipeline.sink, pipeline.processors, self._initial, pipeline.level)
            )
        return bound

    def _bound(self) -> FilteringBoundLogger:
        """A new structlog bound logger of the live pipeline with this proxy's fields."""
        pipeline = _pipeline
        if pipeline is None:
            return cast(FilteringBoundLogger, NOOP)
        wrapper: Any = safe_bound_logger(pipeline.level)
        return cast(
            FilteringBoundLogger,
            wrapper(pipeline.sink, processors=pipeline.processors, context=dict(self._initial)),
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._resolve(), name)

    def bind(self, **fields: Any) -> FilteringBoundLogger:
        """A structlog bound logger with ``fields`` added to this logger's own (before
        ``setup()``: another lazy logger, so a module-level ``bind`` works once set up)."""
        if _pipeline is None:
            return cast(FilteringBoundLogger, _LoggerProxy({**self._initial, **fields}))
        return self._bound().bind(**fields)

    def new(self, **fields: Any) -> FilteringBoundLogger:
        """A structlog bound logger with only ``fields`` (and the logger name)."""
        if _pipeline is None:
            return cast(FilteringBoundLogger, _LoggerProxy({**self._initial, **fields}))
        return self._bound().new(**{**self._initial, **fields})


def live_pipeline() -> LogPipeline | None:
    """The pipeline loggers write through now (``None`` before ``setup()``)."""
    return _pipeline


def get_logger(name: str | None = None, **initial: Any) -> FilteringBoundLogger:
    """A structlog logger writing through the unified_obs pipeline.

    Safe to call at import time: it is a no-op until ``setup()`` and picks up the
    pipeline as soon as it exists.
    """
    fields = {"logger": name, **initial} if name else dict(initial)
    return cast(FilteringBoundLogger, _LoggerProxy(fields))


def _invalidate() -> None:
    for proxy in list(_proxies):
        proxy.__dict__.clear()


def configure(settings: Settings, resource: Resource) -> LogPipeline:
    """Build the chain for ``settings``, point every logger at it, bridge stdlib logging."""
    from ._otel_records import build_provider  # the OpenTelemetry SDK, at setup() only

    global _pipeline, _saved_structlog
    provider = build_provider(settings, resource)
    chain = _build_chain(settings, resource, provider)
    level = _LEVELS[settings.log_level]
    pipeline = LogPipeline(processors=chain, level=level, sink=LineSink(), provider=provider)
    if _saved_structlog is None:
        _saved_structlog = structlog.get_config()
    structlog.configure(
        processors=pipeline.processors,
        wrapper_class=safe_bound_logger(level),
        logger_factory=lambda *args: pipeline.sink,
        cache_logger_on_first_use=False,
    )
    if settings.log_stdlib:
        _stdlib_bridge.install(pipeline.processors, pipeline.sink, level)
    _pipeline = pipeline
    _invalidate()
    return pipeline


def close(pipeline: LogPipeline | None = None) -> None:
    """Stop writing: every logger becomes a no-op (``shutdown``).

    With ``pipeline``, close that one only; the live pipeline is left alone when it is a
    newer one (an old handle shut down after ``testing.reset()`` and a new ``setup()``).
    """
    global _pipeline
    if pipeline is not None and pipeline is not _pipeline:
        pipeline.sink.close()
        return
    if _pipeline is not None:
        _pipeline.sink.close()
    _pipeline = None
    _invalidate()


def reset() -> None:
    """Undo :func:`configure`: restore structlog's and stdlib logging's previous state."""
    global _saved_structlog
    close()
    _stdlib_bridge.restore()
    if _saved_structlog is not None:
        structlog.configure(**_saved_structlog)
        _saved_structlog = None


def reset_otel_global() -> None:
    """Let OpenTelemetry's set-once global logger provider be set again (``testing.reset``)."""
    reset_global_logger_provider()


def _build_chain(
    settings: Settings, resource: Resource, provider: LoggerProvider | None
) -> list[Processor]:
    attributes = resource.attributes
    static = {
        key: attributes[key]
        for key in ("service.name", "service.version", "deployment.environment.name")
        if key in attributes
    }
    console = _wants_console(settings)
    # JSON lines carry exceptions as structured data; the console renderer prints them
    chain: list[Processor] = [
        proc.Enrich(static, Redactor(settings.redact_keys), exceptions=not console)
    ]
    if provider is not None:
        from ._otel_records import OtlpEmitter

        chain.append(OtlpEmitter(provider))
    chain.append(
        proc.ConsoleRenderer(colors=_stdout_is_terminal()) if console else proc.JSONRenderer()
    )
    return chain


def _wants_console(settings: Settings) -> bool:
    if settings.log_format != "auto":
        return settings.log_format == "console"
    return _stdout_is_terminal()


def _stdout_is_terminal() -> bool:
    isatty = getattr(sys.stdout, "isatty", None)
    try:
        return bool(isatty and isatty())
    except Exception:  # a closed or odd stream
        return False
