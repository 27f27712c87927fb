"""The access line of a plain HTTP request, written straight when the chain allows it.

Every plain request writes the same event with the same field names.  When the live
pipeline is the default JSON chain (:class:`~unified_obs.logs.processors.Enrich` then
:class:`~unified_obs.logs.processors.JSONRenderer`, nothing inserted, info enabled, none of
the line's own fields sensitive), :class:`AccessLine` builds the record in one dict, in
the order ``Enrich`` builds it, and renders and writes it: no keyword dict, no merges,
and the redaction decisions for the line's keys are taken once per pipeline.  In every
other case -- another chain, bound fields that are sensitive, hold a dict or clash with
the line's own keys -- it makes the ordinary logger call, so the line is always the same.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

from .. import logs
from ..context import get_fields
from ..logs.processors import Enrich, JSONRenderer, _timestamp, add_trace_context

__all__ = ["EVENT", "LOGGER", "AccessLine"]

LOGGER: Final = "unified_obs.access"
EVENT: Final = "http.request"
_FIELDS: Final = ("logger", "method", "path", "route", "status", "duration_ms", "bytes", "client")
_ADDED: Final = ("timestamp", "level", "event", "exc_info", "trace_id", "span_id", "trace_flags")
_OWN_KEYS: Final = frozenset((*_FIELDS, *_ADDED))
"""Keys the line or ``Enrich`` sets: a bound field or static field by one of these names
takes the ordinary call."""


class _Plan:
    """The straight path for one pipeline."""

    __slots__ = ("keeps", "known", "render", "static", "unsafe", "write")

    def __init__(self, pipeline: logs.LogPipeline, enrich: Enrich, render: JSONRenderer) -> None:
        self.render = render.__call__  # bound: calling the instance costs ~100 ns more
        self.write: Callable[[bytes], None] = pipeline.sink.info
        self.static = enrich.static_fields()
        self.unsafe = _OWN_KEYS | self.static.keys()  # not for bound fields
        self.known: set[str] = set()  # bound keys found to pass as they are
        self.keeps = enrich.keeps

    def passes(self, bound: Mapping[str, Any]) -> bool:
        """Whether ``Enrich`` would keep the bound fields as they are, where they are.
        A plain loop: bound fields are a few (a request id), and building key views and
        a ``map`` for them cost more than looking at each."""
        known = self.known
        for key, value in bound.items():
            if type(value) is dict:  # the redactor looks inside dicts
                return False
            if key not in known and not self._learn(key):
                return False
        return True

    def _learn(self, key: str) -> bool:
        """Whether a bound field named ``key`` passes; a name that does is remembered."""
        if key in self.unsafe or not self.keeps(key):
            return False
        self.known.add(key)
        return True


def _plan(pipeline: logs.LogPipeline) -> _Plan | None:
    """A plan for ``pipeline`` when it is the default JSON chain and keeps the line's
    own fields as they are; else ``None`` (the ordinary logger call)."""
    if pipeline.level > logging.INFO or len(pipeline.processors) != 2:
        return None
    enrich, render = pipeline.processors
    if type(enrich) is not Enrich or type(render) is not JSONRenderer:
        return None
    if not enrich.adds_plain_ids() or not all(map(enrich.keeps, _FIELDS)):
        return None
    if enrich.static_fields().keys() & _OWN_KEYS:
        return None
    return _Plan(pipeline, enrich, render)


class AccessLine:
    """``log.info("http.request", method=..., ...)`` for ``log`` =
    ``get_logger("unified_obs.access")``, at a fraction of its cost."""

    __slots__ = ("_length", "_log", "_pipeline", "_plan")

    def __init__(self, log: Any) -> None:
        self._log = log
        self._pipeline: logs.LogPipeline | None = None  # what the plan was made for
        self._length = 0  # and its number of processors then (a capture inserts one)
        self._plan: _Plan | None = None

    def __call__(
        self,
        method: str,
        path: str,
        route: str | None,
        status: int,
        duration_ms: float,
        size: int,
        client: str | None,
    ) -> None:
        """Write the access line of a request that ended without an error."""
        plan = self._current_plan()
        bound = get_fields()
        if plan is None or (bound and not plan.passes(bound)):
            self._log.info(
                EVENT, method=method, path=path, route=route, status=status,
                duration_ms=duration_ms, bytes=size, client=client,
            )  # fmt: skip
            return
        record = {
            "timestamp": _timestamp(),
            "level": "info",
            "event": EVENT,
            **bound,
            "logger": LOGGER,
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
            "bytes": size,
            "client": client,
            **plan.static,
        }
        add_trace_context(None, "info", record)
        plan.write(plan.render(None, "info", record))

    def _current_plan(self) -> _Plan | None:
        pipeline = logs.live_pipeline()
        if pipeline is None:
            return None
        if pipeline is not self._pipeline or len(pipeline.processors) != self._length:
            self._pipeline = pipeline
            self._length = len(pipeline.processors)
            self._plan = _plan(pipeline)
        return self._plan
