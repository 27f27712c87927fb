"""The OpenTelemetry -> Prometheus rules that need a whole scrape, applied as it is read.

The values live in ``prometheus_client``; :class:`Translated` is what the encoders read
instead of the registry itself.  Per the specification (``compatibility/
prometheus_and_openmetrics.md``) it

- adds ``otel_scope_name`` and ``otel_scope_version`` to every sample of the library's own
  instruments (metrics recorded through the OpenTelemetry API carry their own scope's,
  see ``_otlp_bridge``);
- merges families of one name and type into one family, so that an OpenTelemetry-API
  metric named like one of ours (contrib's ``http.server.request.duration``) stays
  visible beside ours, told apart by its scope labels; of two families of one name with
  different types the first is kept and the other dropped with a warning naming both
  (a scrape must not carry two ``# TYPE`` lines for one name);
- appends ``target_info``, the service's resource attributes as one info metric.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

from prometheus_client.metrics_core import InfoMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from .._semconv import SCOPE_NAME, library_version
from ._names import prom_labels

__all__ = ["Translated", "forget", "set_own_names", "set_resource", "translate"]

_log: Final = logging.getLogger("unified_obs")
_warned: set[tuple[str, str, str]] = set()
_state: dict[str, Any] = {"own": lambda: set(), "target": None}


def set_own_names(own: Callable[[], set[str]]) -> None:
    """Name the families that are the library's own instruments (they get its scope)."""
    _state["own"] = own


def set_resource(attributes: Mapping[str, object] | None) -> None:
    """Expose ``attributes`` (a resource's) as ``target_info``; ``None`` for none."""
    _state["target"] = None if not attributes else target_info(attributes)


def forget() -> None:
    """No resource, and every clash may be warned about again (``testing.reset``)."""
    _state["target"] = None
    _warned.clear()


def target_info(attributes: Mapping[str, object]) -> Metric:
    """The ``target_info`` family: the resource attributes as labels, value 1."""
    return InfoMetricFamily("target", "Target metadata", value=prom_labels(attributes))


class Translated(Collector):
    """What the encoders read in place of ``registry``: its families, translated."""

    def __init__(self, registry: Collector) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        """The registry's families after :func:`translate`, then ``target_info``."""
        yield from translate(self._registry.collect(), _state["own"]())
        if _state["target"] is not None:
            yield _state["target"]


def translate(families: Iterable[Metric], own: set[str]) -> list[Metric]:
    """Our scope's labels on the families named in ``own`` (not on an OpenTelemetry-API
    family of the same name: it has its own scope's); one family per name."""
    scope = {"otel_scope_name": SCOPE_NAME, "otel_scope_version": library_version()}
    merged: dict[str, Metric] = {}
    for family in families:
        ours = family.name in own and not _scoped(family)
        if ours:
            family = _with_labels(family, scope)
        first = merged.get(family.name)
        if first is None:
            merged[family.name] = family
        elif first.type == family.type:
            merged[family.name] = _with_labels(first, {}, more=family.samples)
        elif ours:  # ours keeps its name; the other one is the one left out
            merged[family.name] = family
            _warn_clash(family, first)
        else:
            _warn_clash(first, family)
    return list(merged.values())


def _scoped(family: Metric) -> bool:
    """Whether ``family`` came with its scope (an OpenTelemetry-API family named like ours)."""
    return bool(family.samples) and "otel_scope_name" in family.samples[0].labels


def _with_labels(family: Metric, extra: dict[str, str], more: Iterable[Sample] = ()) -> Metric:
    """A copy of ``family`` (collectors may hand out the same object twice) whose samples
    carry ``extra`` too, followed by ``more`` samples."""
    copy = Metric(family.name, family.documentation, family.type, family.unit)
    copy.samples = [
        Sample(s.name, {**s.labels, **extra}, s.value, s.timestamp, s.exemplar, s.native_histogram)
        for s in family.samples
    ]
    copy.samples.extend(more)
    return copy


def _warn_clash(kept: Metric, dropped: Metric) -> None:
    key = (kept.name, kept.type, dropped.type)
    if key in _warned:
        return
    _warned.add(key)
    _log.warning(
        "unified_obs: two metrics share the Prometheus name %r as a %s and as a %s; the %s "
        "is left out of /metrics (OTLP still carries both). Rename one of them.",
        kept.name,
        kept.type,
        dropped.type,
        dropped.type,
    )
