"""A log line: unified_obs (with trace context) against plain structlog and stdlib JSON.

All three write one JSON line of an event plus 5 keys to a null stream (``write`` and
``flush`` do nothing), in the same run, interleaved:

- **unified_obs**: ``obs.get_logger(name).info(...)`` through the full pipeline while a
  recording span is current: timestamp, level, bound fields, service fields,
  ``trace_id``/``span_id``/``trace_flags``, redaction, exception hook, orjson, sink;
- **plain structlog** (the anchor): structlog's documented production chain
  (``merge_contextvars``, ``add_log_level``, ``TimeStamper(fmt="iso", utc=True)``,
  ``JSONRenderer()``, ``make_filtering_bound_logger(INFO)``,
  ``cache_logger_on_first_use=True``), no trace context;
- **stdlib**: ``logging`` with a ``json.dumps`` formatter of a dict built from the record.

Budget: unified_obs <= 1.0x plain structlog.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, Final, TextIO

import structlog
from opentelemetry import context, trace

import unified_obs as obs
from benchmarks._harness import Group
from unified_obs.testing import reset

FIELDS: Final = {"order_id": 42, "customer": "c-1042", "amount": 12.5, "currency": "EUR", "n": 3}


class NullStream:
    """A text stream that discards everything."""

    def write(self, text: str) -> int:
        """Discard ``text``."""
        return len(text)

    def flush(self) -> None:
        """Nothing to flush."""

    def isatty(self) -> bool:
        """Never a terminal (so the pipeline renders JSON)."""
        return False


class JsonFormatter(logging.Formatter):
    """The stdlib JSON formatter people hand-roll: a dict from the record, ``json.dumps``."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line for ``record`` (timestamp, level, logger, message and extras)."""
        data: dict[str, Any] = {
            "timestamp": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        data.update((k, getattr(record, k)) for k in FIELDS)
        return json.dumps(data)


class _State:
    stdout: TextIO = sys.stdout
    token: Any = None
    span: Any = None


def _setup() -> None:
    _State.stdout, sys.stdout = sys.stdout, NullStream()
    obs.setup(
        environ={}, service_name="bench", service_version="1.0", log_format="json",
        handle_signals=False, metrics_exporter="none",
    )  # fmt: skip
    _State.span = trace.get_tracer("bench").start_span("request")
    _State.token = context.attach(trace.set_span_in_context(_State.span))


def _teardown() -> None:
    context.detach(_State.token)
    _State.span.end()
    reset()
    sys.stdout = _State.stdout


def _plain_structlog() -> Any:
    return structlog.wrap_logger(
        structlog.PrintLogger(NullStream()),  # type: ignore[arg-type]
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=True,
    )


def _stdlib() -> logging.Logger:
    logger = logging.Logger("bench.stdlib", logging.INFO)  # outside the manager: no root
    handler = logging.StreamHandler(NullStream())
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.propagate = False
    return logger


def groups() -> list[Group]:
    """The log-line group."""
    ours = obs.get_logger("bench")
    plain = _plain_structlog()
    stdlib = _stdlib()
    bridged = logging.getLogger("bench.bridged")  # root's handler is ours after setup
    return [
        Group(
            title="Log line: event + 5 keys to JSON, null sink",
            cases={
                "unified_obs json + trace context": lambda: ours.info("order.created", **FIELDS),
                "plain structlog json (no trace context)": lambda: plain.info(
                    "order.created", **FIELDS
                ),
                "stdlib logging json formatter": lambda: stdlib.info("order.created", extra=FIELDS),
                "unified_obs filtered out (debug < info)": lambda: ours.debug("x", **FIELDS),
                "stdlib logging through unified_obs's bridge": lambda: bridged.info(
                    "order.created", extra=FIELDS
                ),
            },
            anchor="plain structlog json (no trace context)",
            budgets={"unified_obs json + trace context": 1.0},
            setup=_setup,
            teardown=_teardown,
            notes=__doc__.split("\n\n")[1] if __doc__ else "",
        )
    ]
