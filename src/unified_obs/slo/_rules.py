"""A spec as Prometheus rules: recording rules, and multi-window, multi-burn-rate alerts.

The alerts are the SRE workbook's ("Alerting on SLOs"): page when 2 % of the period's
error budget goes within 1 h or 5 % within 6 h, open a ticket when 10 % goes within 3 d;
each long window is paired with a short one (1/12 of it) that must also be burning, so an
alert stops soon after the burn does.  Burn-rate factors come from those budget shares and
the real period (30 d: 14.4, 6, 1), so a 28-day period gets its own exact factors.

Differences from Sloth and Pyrra, on purpose:

* The period's error ratio divides the *average error rate* by the *average request rate*
  (``sum_over_time`` of the recorded 5-minute rates), so a quiet hour weighs what its
  traffic weighs, not as much as a busy one (an average of 5-minute ratios would).
* Numbers are exact decimals: ``0.999``, never ``0.9990000000000001``.
* A latency threshold matches every spelling of its bucket boundary (``le="1"``,
  ``le="1.0"``), so the rules work on Prometheus 2 and 3.
* ``<Objective>SLIAbsent`` says when the SLI's metric is missing altogether.

Rule names and the ``sloth_*`` labels are Sloth's, so dashboards made for Sloth work too.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Any, Final

from . import _sli
from ._spec import Objective, Spec

__all__ = [
    "BURN_ALERTS",
    "RATIO_WINDOWS",
    "BurnAlert",
    "absent_alert",
    "alert_name",
    "burn_alert",
    "decimal_text",
    "rule_groups",
    "slo_labels",
]

RATIO_WINDOWS: Final = ("5m", "30m", "1h", "6h", "3d")
"""The windows whose error ratio is recorded (every window the alerts use)."""

_HOURS: Final[dict[str, Decimal]] = {
    "5m": Decimal(5) / 60,
    "30m": Decimal("0.5"),
    "1h": Decimal(1),
    "6h": Decimal(6),
    "3d": Decimal(72),
}


@dataclass(frozen=True)
class BurnAlert:
    """One window pair: alert ``severity`` when ``budget_share`` of the period's error
    budget is spent within ``long`` (and the ``short`` window is burning as fast)."""

    severity: str
    long: str
    short: str
    budget_share: Decimal

    def factor(self, period_days: int) -> Decimal:
        """The burn rate that spends ``budget_share`` in ``long``: 14.4 for 2 % in 1 h of 30 d."""
        return self.budget_share * period_days * 24 / _HOURS[self.long]


BURN_ALERTS: Final = (
    BurnAlert("page", "1h", "5m", Decimal("0.02")),
    BurnAlert("page", "6h", "30m", Decimal("0.05")),
    BurnAlert("ticket", "3d", "6h", Decimal("0.1")),
)
"""The SRE workbook's recommended window pairs and budget shares."""


def decimal_text(number: Decimal) -> str:
    """``number`` as plain decimal text without float noise (at most 12 significant
    digits, for factors such as 0.1 * 672 / 72 that do not end)."""
    rounded = Context(prec=12).plus(number).normalize()
    return format(rounded, "f")


def rule_groups(spec: Spec) -> dict[str, Any]:
    """The whole rule file (``{"groups": [...]}``), one set of groups per objective."""
    groups: list[dict[str, Any]] = []
    for objective in spec.objectives:
        groups.extend(_groups(spec, objective))
    return {"groups": groups}


def slo_id(spec: Spec, objective: Objective) -> str:
    """The ``sloth_id`` label: ``<service>-<objective>``."""
    return f"{spec.service}-{objective.name}"


def slo_labels(spec: Spec, objective: Objective, **more: str) -> dict[str, str]:
    """The labels of every rule of the objective: its own, then Sloth's ``sloth_*``."""
    return {
        **dict(objective.labels),
        "sloth_id": slo_id(spec, objective),
        "sloth_service": spec.service,
        "sloth_slo": objective.name,
        **more,
    }


def alert_name(objective: Objective, what: str) -> str:
    """``orders-available`` + ``ErrorBudgetBurn`` -> ``OrdersAvailableErrorBudgetBurn``: one
    name per objective, so each objective's alerts (and their tests) stand alone even when
    two objectives read the same series.  An objective's own ``alert`` name replaces the
    ``ErrorBudgetBurn`` one and prefixes the others."""
    if objective.alert:
        return objective.alert if what == "ErrorBudgetBurn" else objective.alert + what
    return "".join(part.capitalize() for part in objective.name.split("-")) + what


def _of(spec: Spec, objective: Objective, metric: str) -> str:
    """A recorded series of this objective: ``metric{sloth_id="..."}``."""
    return f"{metric}{{sloth_id={_sli.quote(slo_id(spec, objective))}}}"


def _groups(spec: Spec, objective: Objective) -> list[dict[str, Any]]:
    prefix = f"unified-obs-slo-{slo_id(spec, objective)}"
    return [
        {"name": f"{prefix}-sli", "rules": _sli_rules(spec, objective)},
        {"name": f"{prefix}-period", "rules": _period_rules(spec, objective)},
        {"name": f"{prefix}-alerts", "rules": _alerts(spec, objective)},
    ]


def _sli_rules(spec: Spec, objective: Objective) -> list[dict[str, Any]]:
    args = (objective, spec.namespace, spec.matchers)
    rules = [
        _record("slo:sli_error:rate5m", _sli.bad_rate(*args, "5m"), slo_labels(spec, objective)),
        _record("slo:sli_total:rate5m", _sli.total_rate(*args, "5m"), slo_labels(spec, objective)),
    ]
    for window in RATIO_WINDOWS:
        labels = slo_labels(spec, objective, sloth_window=window)
        rules.append(
            _record(f"slo:sli_error:ratio_rate{window}", _sli.ratio(*args, window), labels)
        )
    return rules


def _period_rules(spec: Spec, objective: Objective) -> list[dict[str, Any]]:
    period = f"{spec.period_days}d"
    budget = decimal_text(objective.error_budget)
    errors = f"sum_over_time({_of(spec, objective, 'slo:sli_error:rate5m')}[{period}])"
    totals = f"sum_over_time({_of(spec, objective, 'slo:sli_total:rate5m')}[{period}])"
    labels = slo_labels(spec, objective)
    return [
        _record(
            f"slo:sli_error:ratio_rate{period}",
            f"{errors} / {totals}",
            slo_labels(spec, objective, sloth_window=period),
        ),
        _record("slo:objective:ratio", f"vector({decimal_text(objective.ratio)})", labels),
        _record("slo:error_budget:ratio", f"vector({budget})", labels),
        _record("slo:time_period:days", f"vector({spec.period_days})", labels),
        _record(
            "slo:current_burn_rate:ratio",
            f"sum without (sloth_window) ({_of(spec, objective, 'slo:sli_error:ratio_rate5m')})"
            f" / {budget}",
            labels,
        ),
        _record(
            "slo:period_burn_rate:ratio",
            f"sum without (sloth_window) "
            f"({_of(spec, objective, f'slo:sli_error:ratio_rate{period}')}) / {budget}",
            labels,
        ),
        _record(
            "slo:period_error_budget_remaining:ratio",
            f"1 - {_of(spec, objective, 'slo:period_burn_rate:ratio')}",
            labels,
        ),
    ]


def _record(name: str, expr: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"record": name, "expr": expr, "labels": labels}


def _alerts(spec: Spec, objective: Objective) -> list[dict[str, Any]]:
    return [
        burn_alert(spec, objective, "page"),
        burn_alert(spec, objective, "ticket"),
        absent_alert(spec, objective),
    ]


def burn_alert(spec: Spec, objective: Objective, severity: str) -> dict[str, Any]:
    """The ``page`` or ``ticket`` alert of the objective."""
    pairs = [a for a in BURN_ALERTS if a.severity == severity]
    either = " or ignoring (sloth_window) ".join(_pair(spec, objective, a) for a in pairs)
    spent = "; ".join(
        f"{decimal_text(a.budget_share * 100)} % of the {spec.period_days}-day budget "
        f"within {a.long} (burn rate {decimal_text(a.factor(spec.period_days))})"
        for a in pairs
    )
    extras = objective.page if severity == "page" else objective.ticket
    return {
        "alert": alert_name(objective, "ErrorBudgetBurn"),
        "expr": f"max without (sloth_window) ({either})",
        "labels": {**slo_labels(spec, objective), "severity": severity, **dict(extras.labels)},
        "annotations": {
            "summary": f"{spec.service} {objective.name}: the error budget is burning "
            + ("fast" if severity == "page" else "slowly"),
            "description": f"Objective {decimal_text(objective.objective)} % "
            f"({objective.kind}). Fires when the error ratio would spend {spent}.",
            **dict(extras.annotations),
        },
    }


def _pair(spec: Spec, objective: Objective, alert: BurnAlert) -> str:
    threshold = decimal_text(alert.factor(spec.period_days) * objective.error_budget)
    long = _of(spec, objective, f"slo:sli_error:ratio_rate{alert.long}")
    short = _of(spec, objective, f"slo:sli_error:ratio_rate{alert.short}")
    return f"({long} > {threshold} and ignoring (sloth_window) {short} > {threshold})"


def absent_alert(spec: Spec, objective: Objective) -> dict[str, Any]:
    """The alert for an SLI whose metric is missing (Pyrra has one, Sloth none)."""
    count = _sli.selector(
        _sli.family(objective, spec.namespace) + "_count", objective, spec.matchers
    )
    return {
        "alert": alert_name(objective, "SLIAbsent"),
        "expr": f"absent({count})",
        "for": "10m",
        "labels": {**slo_labels(spec, objective), "severity": "ticket"},
        "annotations": {
            "summary": f"{spec.service} {objective.name}: the SLI's metric is missing",
            "description": f"No series matches {count}: the SLO cannot be measured "
            "(wrong route or method name, no traffic since the last restart, or no scrape).",
        },
    }
