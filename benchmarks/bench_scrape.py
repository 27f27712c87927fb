"""A scrape at the cardinality limit (issue #24, T-18): ``/metrics`` against stock
``prometheus_client`` encoding the same registry.

The process holds a counter and a histogram (14 buckets) of ours, each at the default
limit of 2,000 series plus the overflow series (about 40,000 lines, 5.6 MB of text with
our scope labels), and one OpenTelemetry-API counter.  Cases, each one full scrape:

- ``stock generate_latest`` (the anchor): ``prometheus_client.generate_latest`` of the
  registry as it is (no scope labels, no ``target_info``: less text than ours);
- ``before: translate + generate_latest``: what ``/metrics`` did before
  ``metrics._text_format`` (the translated families through the stock encoder);
- ``/metrics text``: ``metrics.render()`` as a Prometheus server's scrape gets it;
- the OpenMetrics 1.0.0 pair, before and now;
- in a second group, ``/metrics text`` with ``prometheus_without_scope_info``.

Budget: ``/metrics text`` at most 0.35x the stock encoder of the untranslated registry,
which writes less (no scope labels, no ``target_info``): T-18 asks for 100 ms, and the
stock encoder takes 260-270 ms here.  The first scrape after new series also reads each
new series' ``_created`` stamp once (``_own_families``), which the medians leave out.
"""

from __future__ import annotations

from opentelemetry import metrics as otel_metrics
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

import unified_obs as obs
from benchmarks._harness import Group
from unified_obs import metrics
from unified_obs.metrics._prometheus import Translated, set_scope_labels
from unified_obs.testing import reset

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
SERIES = 2_100  # past the limit of 2,000: the overflow series is there too


def _flood() -> None:
    reset()
    obs.setup(service_name="bench-scrape", environ={}, log_level="error", handle_signals=False)
    logins = obs.counter("flood.logins", "Logins", labels=("user",))
    latency = obs.histogram("flood.latency", unit="s", labels=("user",))
    for index in range(SERIES):
        user = f"user-{index:06d}-0123456789abcdef"
        logins.labels(user).inc()
        latency.labels(user).observe(0.01 * (index % 50))
    otel_metrics.get_meter("lib", "1.0").create_counter("lib.calls").add(1, {"peer": "db"})


def _flood_without_scope() -> None:
    _flood()
    set_scope_labels(False)


def _openmetrics_before() -> bytes:
    body: bytes = openmetrics_latest(Translated(REGISTRY))  # type: ignore[no-untyped-call]
    return body


def groups() -> list[Group]:
    """A full scrape, each way; then without the scope labels."""
    return [
        Group(
            "Scrape at the cardinality limit (2 x 2,001 series, ~40,000 lines; ns per scrape)",
            {
                "stock generate_latest": lambda: generate_latest(REGISTRY),
                "before: translate + generate_latest": lambda: generate_latest(
                    Translated(REGISTRY)
                ),
                "/metrics text": lambda: metrics.render(None, None),
                "before: OpenMetrics translate + generate_latest": _openmetrics_before,
                "/metrics OpenMetrics": lambda: metrics.render(OPENMETRICS, None),
            },
            anchor="stock generate_latest",
            budgets={"/metrics text": 0.35},
            setup=_flood,
            teardown=reset,
            interval=True,
        ),
        Group(
            "Scrape at the cardinality limit, prometheus_without_scope_info (ns per scrape)",
            {
                "stock generate_latest": lambda: generate_latest(REGISTRY),
                "/metrics text, no scope labels": lambda: metrics.render(None, None),
            },
            anchor="stock generate_latest",
            setup=_flood_without_scope,
            teardown=reset,
            interval=True,
        ),
    ]
