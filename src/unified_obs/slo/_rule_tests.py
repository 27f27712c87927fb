"""The ``promtool test rules`` file that ships with every generated rule set.

For each objective it drives synthetic traffic through the very series the library
exposes and states what the alerts must do:

* a fast burn (every request bad after two good hours) pages within the time the burn
  rate implies (the SRE workbook's detection time), plus two evaluations;
* a slow burn (half-way between the ticket's and the slower page's burn rate) opens a
  ticket and never pages;
* an error rate within budget raises nothing;
* no traffic at all raises ``<Objective>SLIAbsent``.

Each objective's alerts have their own name, so its tests hold whatever else the spec has.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from . import _sli
from ._rules import BURN_ALERTS, absent_alert, alert_name, burn_alert, decimal_text
from ._spec import Objective, Spec

__all__ = ["rule_tests"]

_ONSET: Final = 60
"""Minutes of good traffic before the fast burn starts."""


@dataclass(frozen=True)
class _Segment:
    """``minutes`` of traffic: ``total`` requests and ``bad`` ones per minute."""

    minutes: int
    total: Decimal
    bad: Decimal


def rule_tests(spec: Spec, rule_file: str) -> dict[str, Any]:
    """The test file for ``spec``'s rules, which it reads from ``rule_file`` (a path
    relative to the test file)."""
    tests: list[dict[str, Any]] = []
    for objective in spec.objectives:
        tests.extend(_tests(spec, objective))
    return {"rule_files": [rule_file], "evaluation_interval": "1m", "tests": tests}


def _tests(spec: Spec, objective: Objective) -> list[dict[str, Any]]:
    rate = Decimal(1000) / objective.error_budget  # requests a minute: bad counts stay whole
    page = min(a.factor(spec.period_days) for a in BURN_ALERTS if a.severity == "page")
    ticket = next(a for a in BURN_ALERTS if a.severity == "ticket").factor(spec.period_days)
    slow, fine = (page + ticket) / 2, min(Decimal("0.5"), ticket / 2)
    name = f"{spec.service} {objective.name}"
    return [
        _fast_burn(spec, objective, rate, name),
        _steady(spec, objective, rate * slow * objective.error_budget, rate, ["ticket"])
        | {"name": f"{name}: a slow burn ({decimal_text(slow)}x) opens a ticket, no page"},
        _steady(spec, objective, rate * fine * objective.error_budget, rate, [])
        | {"name": f"{name}: an error rate within budget ({decimal_text(fine)}x) is quiet"},
        _absent(spec, objective)
        | {"name": f"{name}: no traffic raises {alert_name(objective, 'SLIAbsent')}"},
    ]


def _fast_burn(spec: Spec, objective: Objective, rate: Decimal, name: str) -> dict[str, Any]:
    fastest = BURN_ALERTS[0]
    detect = math.ceil(fastest.factor(spec.period_days) * objective.error_budget * 60) + 2
    traffic = [_Segment(_ONSET, rate, Decimal(0)), _Segment(detect + 5, rate, rate)]
    return {
        "name": f"{name}: every request failing pages within {detect} minutes",
        "interval": "1m",
        "input_series": _series(spec, objective, traffic),
        "alert_rule_test": [
            _expect(spec, objective, _ONSET, []),
            _expect(spec, objective, _ONSET + detect, ["page", "ticket"]),
        ],
    }


def _steady(
    spec: Spec, objective: Objective, bad: Decimal, rate: Decimal, severities: list[str]
) -> dict[str, Any]:
    traffic = [_Segment(120, rate, bad)]
    return {
        "interval": "1m",
        "input_series": _series(spec, objective, traffic),
        "alert_rule_test": [_expect(spec, objective, at, severities) for at in (30, 120)],
    }


def _absent(spec: Spec, objective: Objective) -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": [{"series": 'up{job="unrelated"}', "values": "1x20"}],
        "alert_rule_test": [
            {
                "eval_time": "15m",
                "alertname": alert_name(objective, "SLIAbsent"),
                "exp_alerts": [
                    _expected(absent_alert(spec, objective), _absent_labels(spec, objective))
                ],
            }
        ],
    }


def _absent_labels(spec: Spec, objective: Objective) -> dict[str, str]:
    """``absent()`` adds the selector's equality matchers to the alert's labels."""
    labels = dict(spec.matchers)
    if objective.target is not None:
        labels[_target_label(objective)] = objective.target
    return labels


def _expected(rule: dict[str, Any], more_labels: dict[str, str]) -> dict[str, Any]:
    """What promtool should see of a firing ``rule``: its labels and annotations."""
    return {"exp_labels": {**rule["labels"], **more_labels}, "exp_annotations": rule["annotations"]}


def _expect(
    spec: Spec, objective: Objective, minute: int, severities: Sequence[str]
) -> dict[str, Any]:
    return {
        "eval_time": f"{minute}m",
        "alertname": alert_name(objective, "ErrorBudgetBurn"),
        "exp_alerts": [_expected(burn_alert(spec, objective, s), {}) for s in severities],
    }


def _target_label(objective: Objective) -> str:
    return "http_route" if objective.protocol == "http" else "rpc_method"


def _series(spec: Spec, objective: Objective, traffic: list[_Segment]) -> list[dict[str, str]]:
    """Counters as ``/metrics`` shows them: good and bad requests (availability), or all
    requests and those within the threshold's bucket (latency)."""
    family = _sli.family(objective, spec.namespace)
    base = {**spec.matchers, _target_label(objective): objective.target or _any(objective)}
    if objective.kind == "latency":
        assert objective.threshold is not None
        bucket = {**base, "le": _client_le(objective.threshold)}
        return [
            _counter(f"{family}_count", base, [(s.minutes, s.total) for s in traffic]),
            _counter(f"{family}_bucket", bucket, [(s.minutes, s.total - s.bad) for s in traffic]),
        ]
    good_code, bad_code = ("200", "500") if objective.protocol == "http" else ("OK", "UNAVAILABLE")
    code = (
        "http_response_status_code" if objective.protocol == "http" else "rpc_response_status_code"
    )
    return [
        _counter(
            f"{family}_count",
            base | {code: good_code},
            [(s.minutes, s.total - s.bad) for s in traffic],
        ),
        _counter(f"{family}_count", base | {code: bad_code}, [(s.minutes, s.bad) for s in traffic]),
    ]


def _any(objective: Objective) -> str:
    return "/" if objective.protocol == "http" else "test.Service/Call"


def _client_le(threshold: Decimal) -> str:
    """The ``le`` value as prometheus_client writes it (``1.0``, ``0.25``)."""
    text = format(threshold.normalize(), "f")
    return text if "." in text else text + ".0"


def _counter(
    metric: str, labels: dict[str, str], steps: list[tuple[int, Decimal]]
) -> dict[str, str]:
    """A counter from 0 growing by each step's per-minute amount, in promtool's notation."""
    matchers = ",".join(f"{k}={_sli.quote(v)}" for k, v in sorted(labels.items()))
    tokens, value = ["0"], Decimal(0)
    for minutes, per_minute in steps:
        first = value + per_minute
        if per_minute:
            tokens.append(f"{decimal_text(first)}+{decimal_text(per_minute)}x{minutes - 1}")
        else:
            tokens.append(f"{decimal_text(value)}x{minutes - 1}")
        value += per_minute * minutes
    return {"series": f"{metric}{{{matchers}}}", "values": " ".join(tokens)}
