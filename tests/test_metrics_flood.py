"""A flood of distinct label values stays bounded: series, memory, scrape size and time."""

from __future__ import annotations

import gc
import time
import uuid

from prometheus_client.parser import text_string_to_metric_families

import unified_obs as obs
from unified_obs import metrics


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        import os

        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _timed_scrape() -> tuple[bytes, float]:
    """One scrape's body and the fastest of three scrapes' seconds (a loose bound on the
    fastest is not upset by another process taking the CPU for a moment)."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        body = metrics.render(None, None)[2]
        times.append(time.perf_counter() - start)
    return body, min(times)


def test_flood_of_label_values_keeps_series_at_limit_plus_one() -> None:
    """100,000 distinct user ids: limit + 1 series, every increment counted, RSS growth
    under 20 MB, and the scrape stays small and quick (under 1 s, where stock
    prometheus_client takes 1.64 s for the unbounded flood: T-18; its timing is measured
    in benchmarks/bench_scrape.py)."""
    obs.setup(service_name="flood", environ={})
    limit = 2000
    logins = obs.counter("flood.logins", "Logins", labels=("user",))
    latency = obs.histogram("flood.latency", unit="s", labels=("user",))
    gc.collect()
    before = _rss_bytes()
    for _ in range(100_000):
        user = uuid.uuid4().hex
        logins.labels(user).inc()
        latency.labels(user=user).observe(0.01)
    gc.collect()
    growth = _rss_bytes() - before
    body, scrape = _timed_scrape()
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    totals = [s for s in families["flood_logins"].samples if s.name == "flood_logins_total"]
    assert len(totals) == limit + 1
    assert sum(s.value for s in totals) == 100_000
    counts = [s for s in families["flood_latency_seconds"].samples if s.name.endswith("_count")]
    assert len(counts) == limit + 1
    assert metrics.value("unified_obs.metrics.overflow", metric="flood.logins") == 98_000
    assert growth < 20 * 1024 * 1024, f"RSS grew {growth / 1e6:.1f} MB"
    assert len(body) < 6_000_000  # 2 x 2,001 series, 18 lines each, scope labels on each
    assert scrape < 1.0, f"scrape took {scrape:.2f} s"  # stock, unbounded: 1.64 s (B7)
