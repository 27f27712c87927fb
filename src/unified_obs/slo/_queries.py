"""The PromQL of each dashboard panel, from the metric names the library emits.

Pure text: :mod:`._dashboard` turns these into Grafana panels, and
``tests/test_slo_scrape.py`` runs every one against a real Prometheus scraping a real
service, so a wrong name or label shows up as an empty result there.  Rates use Grafana's
``$__rate_interval``; error shares add ``or 0 * total`` so that "no errors" reads 0, not
"no data".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["RATE", "Names", "Query"]

RATE: Final = "$__rate_interval"
_INVALID: Final = re.compile(r"[^A-Za-z0-9_:]+")


@dataclass(frozen=True)
class Query:
    """One panel query: ``expr`` and the legend Grafana shows for each series."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Names:
    """Prometheus names under an optional ``metrics_namespace``, with the spec's extra
    label matchers (``match``, e.g. ``job="shop"``) in every selector."""

    namespace: str | None = None
    match: str = ""

    def __call__(self, name: str) -> str:
        """``name`` with the namespace prefix, as ``/metrics`` shows it."""
        if not self.namespace or name.startswith("process_"):  # prometheus_client's own
            return name
        return f"{_INVALID.sub('_', self.namespace).strip('_')}_{name}"

    def sel(self, metric: str, matchers: str = "") -> str:
        """``metric{...}``: the name, the spec's matchers and ``matchers``."""
        inside = ",".join(m for m in (self.match, matchers) if m)
        return f"{self(metric)}{{{inside}}}"

    def rate(self, metric: str, by: str, matchers: str = "") -> str:
        """``sum by (by) (rate(metric{matchers}[$__rate_interval]))``."""
        return f"sum by ({by}) (rate({self.sel(metric, matchers)}[{RATE}]))"

    def share(self, metric: str, by: str, bad: str) -> str:
        """The share of ``bad`` samples per ``by``; 0 (not nothing) when there are none."""
        total = self.rate(metric, by)
        return f"({self.rate(metric, by, bad)} or 0 * {total}) / {total}"

    def quantiles(self, family: str, by: str) -> list[Query]:
        """p50, p95 and p99 of a histogram per ``by`` (``le`` summed over everything else)."""
        buckets = self.rate(family + "_bucket", f"le, {by}")
        return [
            Query(f"histogram_quantile({q}, {buckets})", f"p{round(q * 100)} {{{{{by}}}}}")
            for q in (0.5, 0.95, 0.99)
        ]

    def heatmap(self, family: str) -> Query:
        """Bucket rates by ``le``, for a heatmap panel."""
        return Query(self.rate(family + "_bucket", "le"), "{{le}}")
