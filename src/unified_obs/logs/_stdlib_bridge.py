"""The stdlib ``logging`` bridge: uvicorn, gunicorn and library records go through the
same processor chain and sink as structlog ones, without duplicate lines.

A record's message template loses its ANSI escape sequences (colours a library meant
for a terminal), and the ``color_message`` extra uvicorn attaches (the same message with
colours) is dropped: a JSON line carries the plain text once.  The arguments formatted
into the template are data and stay as they are (the renderer escapes them)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any, Final

import structlog
from structlog.typing import EventDict, Processor

from ._stdout_sink import LineSink
from ._warning_filter import RateLimitFilter

__all__ = ["install", "plain_text", "restore"]

_SERVER_LOGGERS: Final = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "gunicorn",
    "gunicorn.error",
    "gunicorn.access",
    "hypercorn.error",
    "hypercorn.access",
)
_saved: list[tuple[logging.Logger, list[logging.Handler], bool, int]] = []


class _StdlibHandler(logging.Handler):
    """Sends stdlib ``logging`` records through the pipeline's chain and sink."""

    def __init__(self, processors: list[Processor], sink: LineSink, level: int) -> None:
        super().__init__(level)
        self._processors = processors  # the live list: capture() edits show up here too
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        sink = self._sink
        if sink.closed:  # after shutdown(): nothing to do
            return
        try:
            result: Any = _record_to_event(record)
            method = record.levelname.lower()
            for processor in self._processors:
                result = processor(None, method, result)
            (sink.msg_now if record.levelno >= logging.ERROR else sink.msg)(result)
        except structlog.DropEvent:
            pass
        except Exception:
            self.handleError(record)


_STANDARD_ATTRS: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's copy of the message with ANSI colours, for its own formatter
}
_ANSI_ESCAPE: Final = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-_])"
)
"""ECMA-48 sequences: CSI (colours, cursor moves), OSC (titles, links), and the two-byte
escapes."""


def plain_text(message: str) -> str:
    """``message`` without ANSI escape sequences (unchanged, and fast, when it has none)."""
    return _ANSI_ESCAPE.sub("", message) if "\x1b" in message else message


def _message(record: logging.LogRecord) -> str:
    """``record.getMessage()`` with the escape sequences of its template removed."""
    template = record.msg
    if isinstance(template, str) and "\x1b" in template:
        template = plain_text(template)
        return template % record.args if record.args else template
    return record.getMessage()


def _record_to_event(record: logging.LogRecord) -> EventDict:
    event: EventDict = {"event": _message(record), "logger": record.name}
    attributes = record.__dict__
    if attributes.keys() - _STANDARD_ATTRS:  # extras given (set difference in C)
        event.update((k, v) for k, v in attributes.items() if k not in _STANDARD_ATTRS)
    if record.exc_info:
        event["exc_info"] = record.exc_info
    return event


def install(processors: list[Processor], sink: LineSink, level: int) -> None:
    """Route the root logger and the servers' own loggers through ``processors``."""
    root = logging.getLogger()
    handler = _StdlibHandler(processors, sink, level)
    handler.addFilter(RateLimitFilter("opentelemetry"))
    _take_over(root, [handler], propagate=True, level=level)
    for name in _SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if name.endswith(".access") and _switched_off(logger):
            continue  # the server was told not to log access (uvicorn --no-access-log)
        _take_over(logger, [], propagate=True, level=logging.NOTSET)


def _switched_off(logger: logging.Logger) -> bool:
    """Whether a server turned ``logger`` off: no handlers and no propagation, so nothing
    it logs goes anywhere (uvicorn then skips its access log altogether)."""
    return not logger.handlers and not logger.propagate


def _take_over(
    logger: logging.Logger, handlers: Iterable[logging.Handler], *, propagate: bool, level: int
) -> None:
    _saved.append((logger, list(logger.handlers), logger.propagate, logger.level))
    logger.handlers[:] = list(handlers)
    logger.propagate = propagate
    logger.setLevel(level)


def restore() -> None:
    """Put back the handlers, propagation and levels :func:`install` changed."""
    for logger, handlers, propagate, level in reversed(_saved):
        logger.handlers[:] = handlers
        logger.propagate = propagate
        logger.setLevel(level)
    _saved.clear()
