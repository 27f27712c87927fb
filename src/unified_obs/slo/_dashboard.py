"""The Grafana dashboard for a service instrumented with unified_obs, built with
grafana-foundation-sdk (Grafana's own generated builders, so the JSON follows Grafana's
schema; the ``slo`` extra installs it).

Rows: HTTP RED per route, gRPC RED per method (p50/p95/p99 and a heatmap, both with
exemplars linking to traces), runtime, probes and the library's self-metrics, and, given a
spec, one row per objective (budget remaining, burn rates, error ratio per window).
:func:`panel_queries` lists every query, so a test can run each against a real Prometheus.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..errors import require_extra
from ._queries import Names, Query
from ._rules import RATIO_WINDOWS, slo_id
from ._sli import quote, server_errors
from ._spec import Spec

__all__ = ["SDK_PYTHON", "PanelSpec", "dashboard_json", "panel_queries", "rows", "sdk_missing"]

_RED: Final = {
    "http": ("HTTP", "http_server_request_duration_seconds", "http_route"),
    "grpc": ("gRPC", "rpc_server_call_duration_seconds", "rpc_method"),
}


@dataclass(frozen=True)
class PanelSpec:
    """One panel: its kind (``timeseries``, ``stat``, ``heatmap``), title, unit, queries
    and what it shows (the panel's description)."""

    kind: str
    title: str
    unit: str
    queries: tuple[Query, ...]
    description: str
    exemplars: bool = False
    span: int = 8


def rows(
    spec: Spec | None, protocols: Sequence[str] = ("http", "grpc")
) -> list[tuple[str, list[PanelSpec]]]:
    """Every row's title and panels, in order."""
    match = ",".join(f"{k}={quote(v)}" for k, v in spec.match) if spec else ""
    names = Names(spec.namespace if spec else None, match)
    found = [_red_row(names, protocol) for protocol in protocols]
    found += [("Runtime", _runtime(names)), ("Probes and self-metrics", _self(names))]
    if spec is not None:
        found += [(f"SLO {o.name}", _slo(slo_id(spec, o))) for o in spec.objectives]
    return found


def panel_queries(
    spec: Spec | None, protocols: Sequence[str] = ("http", "grpc")
) -> list[tuple[str, str]]:
    """``(panel title, expr)`` for every query of the dashboard."""
    return [
        (p.title, q.expr) for _, panels in rows(spec, protocols) for p in panels for q in p.queries
    ]


def _red_row(names: Names, protocol: str) -> tuple[str, list[PanelSpec]]:
    title, family, by = _RED[protocol]
    requests = Query(names.rate(family + "_count", by), f"{{{{{by}}}}}")
    errors = Query(names.share(family + "_count", by, server_errors(protocol)), f"{{{{{by}}}}}")
    return f"{title} (rate, errors, duration)", [
        PanelSpec(
            "timeseries",
            f"{title} requests per second",
            "reqps",
            (requests,),
            f"Requests per second per {by}, from {family}_count.",
        ),
        PanelSpec(
            "timeseries",
            f"{title} server error share",
            "percentunit",
            (errors,),
            f"Share of requests the server failed per {by} ({server_errors(protocol)}).",
        ),
        PanelSpec(
            "timeseries",
            f"{title} duration p50 / p95 / p99",
            "s",
            tuple(names.quantiles(family, by)),
            f"Quantiles per {by} from the {family} buckets; dots are exemplars: "
            "click one to open its trace.",
            exemplars=True,
        ),
        PanelSpec(
            "heatmap",
            f"{title} duration heatmap",
            "s",
            (names.heatmap(family),),
            "Requests per duration bucket over time, with exemplars.",
            exemplars=True,
            span=24,
        ),
    ]


def _series(title: str, unit: str, description: str, *queries: Query) -> PanelSpec:
    return PanelSpec("timeseries", title, unit, queries, description)


def _runtime(names: Names) -> list[PanelSpec]:
    lag = names.rate("unified_obs_asyncio_loop_lag_seconds_bucket", "le")
    gc = names.rate("unified_obs_gc_pause_duration_seconds_bucket", "le, cpython_gc_generation")
    per_instance = "sum by (instance) ({})"
    return [
        _series(
            "CPU (cores)",
            "short",
            "CPU seconds per second (user + system) per instance.",
            Query(names.rate("process_cpu_seconds_total", "instance"), "{{instance}}"),
        ),
        _series(
            "Resident memory",
            "bytes",
            "Resident set size per instance (all workers).",
            Query(per_instance.format(names.sel("process_resident_memory_bytes")), "{{instance}}"),
        ),
        _series(
            "Open file descriptors",
            "short",
            "Open file descriptors per instance.",
            Query(per_instance.format(names.sel("process_open_fds")), "{{instance}}"),
        ),
        _series(
            "Threads and asyncio tasks",
            "short",
            "Threads of the process and unfinished asyncio tasks of its event loop.",
            Query(per_instance.format(names.sel("process_threads")), "threads {{instance}}"),
            Query(
                per_instance.format(names.sel("unified_obs_asyncio_tasks")), "tasks {{instance}}"
            ),
        ),
        _series(
            "GC pause p99 by generation",
            "s",
            "How long the garbage collector stopped the process, per generation.",
            Query(f"histogram_quantile(0.99, {gc})", "gen {{cpython_gc_generation}}"),
        ),
        _series(
            "Event-loop lag p50 / p99",
            "s",
            "How late the event loop ran a timer: the time it spent on other work.",
            Query(f"histogram_quantile(0.5, {lag})", "p50"),
            Query(f"histogram_quantile(0.99, {lag})", "p99"),
        ),
    ]


def _self(names: Names) -> list[PanelSpec]:
    status = names.sel("unified_obs_health_check_status")
    failures = names.rate("unified_obs_export_failures_total", "signal")
    overflow = names.rate("unified_obs_metrics_overflow_total", "metric")
    return [
        _series(
            "Health checks (1 = passing)",
            "short",
            "Each registered readiness/liveness check: 1 passing, 0 failing.",
            Query(f"max by (check, kind) ({status})", "{{kind}} {{check}}"),
        ),
        _series(
            "Telemetry exported per second",
            "short",
            "Spans and log records exported, failed (the exporter said no) or dropped "
            "(the queue was full).",
            Query(
                names.rate("unified_obs_export_items_total", "signal, outcome"),
                "{{signal}} {{outcome}}",
            ),
        ),
        _series(
            "Export failures and overflow",
            "short",
            "Failed export calls per signal, and measurements folded into a metric's overflow "
            "series (its cardinality limit was reached); 0 is the healthy value.",
            Query(f"{failures} or vector(0)", "failed calls {{signal}}"),
            Query(f"{overflow} or vector(0)", "overflow {{metric}}"),
        ),
    ]


def _slo(ident: str) -> list[PanelSpec]:
    of = f"{{sloth_id={quote(ident)}}}"
    windows = "|".join(RATIO_WINDOWS)
    return [
        PanelSpec(
            "stat",
            f"{ident}: error budget remaining",
            "percentunit",
            (Query(f"slo:period_error_budget_remaining:ratio{of}", "remaining"),),
            "Share of the period's error budget not yet spent (negative: overspent).",
        ),
        PanelSpec(
            "timeseries",
            f"{ident}: burn rate",
            "short",
            (
                Query(f"slo:current_burn_rate:ratio{of}", "now (5m)"),
                Query(f"slo:period_burn_rate:ratio{of}", "period"),
            ),
            "How fast the budget is spent: 1 spends exactly the budget over the period; "
            "the page alert fires at 14.4 (1 h) or 6 (6 h), the ticket at 1 (3 d).",
        ),
        PanelSpec(
            "timeseries",
            f"{ident}: error ratio per window",
            "percentunit",
            (
                Query(
                    f'{{__name__=~"slo:sli_error:ratio_rate({windows})",sloth_id={quote(ident)}}}',
                    "{{sloth_window}}",
                ),
            ),
            "Share of bad events over each alerting window.",
        ),
    ]


def dashboard_json(
    spec: Spec | None, title: str = "", protocols: Sequence[str] = ("http", "grpc")
) -> str:
    """The dashboard as Grafana JSON (sorted keys, stable panel ids)."""
    sdk = _sdk()
    service = spec.service if spec else ""
    board = sdk.dashboard.Dashboard(title or f"{service or 'Service'} (unified_obs)")
    board.uid(f"unified-obs-{service}" if service else "unified-obs").tags(["unified_obs"])
    board.time("now-1h", "now").refresh("30s").with_variable(
        sdk.dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
    )
    ids = iter(range(1, 1000))
    for row_title, panels in rows(spec, protocols):
        board.with_row(sdk.dashboard.Row(row_title).id(next(ids)))
        for panel in panels:
            board.with_panel(_panel(sdk, panel, next(ids)))
    encoded: str = json.dumps(board.build(), cls=sdk.encoder.JSONEncoder, indent=2, sort_keys=True)
    return encoded


def _panel(sdk: Any, panel: PanelSpec, ident: int) -> Any:
    builder = {"timeseries": sdk.timeseries, "stat": sdk.stat, "heatmap": sdk.heatmap}[panel.kind]
    source = sdk.dashboard_models.DataSourceRef(type_val="prometheus", uid="${datasource}")
    built = builder.Panel().id(ident).title(panel.title).description(panel.description)
    built.datasource(source).unit(panel.unit).span(panel.span).height(8)
    if panel.kind == "heatmap":
        built.calculate(False)
    for ref, query in zip("ABCDEFGH", panel.queries, strict=False):
        target = sdk.prometheus.Dataquery().expr(query.expr).legend_format(query.legend)
        target.ref_id(ref).range().exemplar(panel.exemplars)
        if panel.kind == "heatmap":
            target.format(sdk.prometheus_models.PromQueryFormat.HEATMAP)
        built.with_target(target)
    return built


@dataclass(frozen=True)
class _Sdk:
    dashboard: Any
    dashboard_models: Any
    timeseries: Any
    stat: Any
    heatmap: Any
    prometheus: Any
    prometheus_models: Any
    encoder: Any


SDK_PYTHON: Final = (3, 11)
"""The oldest Python grafana-foundation-sdk supports (the ``slo`` extra skips it below)."""


def sdk_missing(version: tuple[int, ...]) -> str:
    """Why the dashboard cannot be built on Python ``version`` without the SDK: the Python
    floor when ``version`` is below it (``pip install`` cannot help there), else the extra."""
    if version[:2] < SDK_PYTHON:
        running = ".".join(map(str, version[:3]))
        return (
            f"the Grafana dashboard needs Python 3.11 or newer (grafana-foundation-sdk "
            f"supports nothing older); this is Python {running}. Run `unified-obs dashboard` "
            "with Python 3.11+; `unified-obs rules` works on 3.10"
        )
    return (
        "grafana_foundation_sdk is not installed; install it with: pip install 'unified-obs[slo]'"
    )


def _sdk() -> _Sdk:
    try:
        require_extra("grafana_foundation_sdk", "slo")
    except ImportError as exc:
        raise ImportError(sdk_missing(sys.version_info[:3])) from exc
    from grafana_foundation_sdk.builders import dashboard, heatmap, prometheus, stat, timeseries
    from grafana_foundation_sdk.cog import encoder
    from grafana_foundation_sdk.models import dashboard as dashboard_models
    from grafana_foundation_sdk.models import prometheus as prometheus_models

    return _Sdk(
        dashboard,
        dashboard_models,
        timeseries,
        stat,
        heatmap,
        prometheus,
        prometheus_models,
        encoder,
    )
