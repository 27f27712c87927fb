"""The PromQL of an SLI: bad and total events per second over a window, from the metric
names, labels and buckets the library itself emits.

``/metrics`` exposes ``http.server.request.duration`` as
``http_server_request_duration_seconds`` (labels ``http_route``,
``http_response_status_code``, ...) and ``rpc.server.call.duration`` as
``rpc_server_call_duration_seconds`` (``rpc_method``, ``rpc_response_status_code``), prefixed by the
``metrics_namespace`` when one is set.  ``tests/test_slo.py`` checks these names against
the metrics module's own naming.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from ._spec import Objective

__all__ = [
    "bad_rate",
    "family",
    "le_pattern",
    "quote",
    "ratio",
    "selector",
    "server_errors",
    "total_rate",
]

_FAMILIES: Final = {
    "http": ("http_server_request_duration_seconds", "http_route"),
    "grpc": ("rpc_server_call_duration_seconds", "rpc_method"),
}
_SERVER_ERRORS: Final = {
    "http": ("http_response_status_code", "5.."),
    "grpc": (
        "rpc_response_status_code",
        "UNKNOWN|DEADLINE_EXCEEDED|UNIMPLEMENTED|INTERNAL|UNAVAILABLE|DATA_LOSS",
    ),
}
_INVALID: Final = re.compile(r"[^A-Za-z0-9_:]+")


def quote(text: str) -> str:
    """``text`` as a PromQL double-quoted string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def server_errors(protocol: str) -> str:
    """The label matcher of requests the server failed (HTTP 5xx, gRPC server-side codes)."""
    label, pattern = _SERVER_ERRORS[protocol]
    return f"{label}=~{quote(pattern)}"


def family(objective: Objective, namespace: str | None) -> str:
    """The Prometheus histogram family the objective reads (without ``_count``)."""
    name = _FAMILIES[objective.protocol][0]
    return f"{_INVALID.sub('_', namespace).strip('_')}_{name}" if namespace else name


def le_pattern(threshold: Decimal) -> str:
    """A regular expression matching every spelling of the bucket boundary ``threshold``.

    prometheus_client writes ``le="1.0"`` and ``le="0.25"``; other clients ``le="1"``;
    Prometheus 3 rewrites integers to ``1.0`` on ingestion, Prometheus 2 keeps what it
    scraped.  The pattern matches all of them (``1(\\.0*)?``, ``0\\.250*``).
    """
    text = format(threshold.normalize(), "f")
    if "." not in text:
        return text + r"(\.0*)?"
    whole, fraction = text.split(".")
    return f"{whole}\\.{fraction}0*"


def selector(metric: str, objective: Objective, extra: Mapping[str, str], *matchers: str) -> str:
    """``metric{...}`` for the objective's target, the spec's extra labels and ``matchers``."""
    parts = [f"{name}={quote(value)}" for name, value in sorted(extra.items())]
    if objective.target is not None:
        parts.append(f"{_FAMILIES[objective.protocol][1]}={quote(objective.target)}")
    parts.extend(matchers)
    return f"{metric}{{{','.join(parts)}}}"


def total_rate(
    objective: Objective, namespace: str | None, extra: Mapping[str, str], window: str
) -> str:
    """Events per second over ``window``."""
    count = selector(family(objective, namespace) + "_count", objective, extra)
    return f"sum(rate({count}[{window}]))"


def bad_rate(
    objective: Objective, namespace: str | None, extra: Mapping[str, str], window: str
) -> str:
    """Bad events per second over ``window``; ``0`` (not nothing) while there were none."""
    name = family(objective, namespace)
    if objective.kind == "latency":
        assert objective.threshold is not None  # checked when the objective was built
        le = f"le=~{quote(le_pattern(objective.threshold))}"
        good = selector(name + "_bucket", objective, extra, le)
        return f"({total_rate(objective, namespace, extra, window)} - sum(rate({good}[{window}])))"
    bad = selector(name + "_count", objective, extra, server_errors(objective.protocol))
    return f"(sum(rate({bad}[{window}])) or vector(0))"


def ratio(
    objective: Objective, namespace: str | None, extra: Mapping[str, str], window: str
) -> str:
    """The share of bad events over ``window``; no value while there was no traffic."""
    bad = bad_rate(objective, namespace, extra, window)
    return f"{bad} / {total_rate(objective, namespace, extra, window)}"
