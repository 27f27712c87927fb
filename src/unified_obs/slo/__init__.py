"""SLOs as code: objectives over the library's own metrics, compiled to Prometheus rules.

    from unified_obs import slo

    spec = slo.Spec.of("checkout", [
        slo.availability("orders-available", 99.9, route="/orders/{order_id}"),
        slo.latency("orders-fast", 99, threshold=0.25, route="/orders/{order_id}"),
    ])
    rules = slo.rules_yaml(spec)                      # recording rules + burn-rate alerts
    tests = slo.rule_tests_yaml(spec, "rules.yml")    # `promtool test rules` for them

The same spec can live in a YAML file (:func:`load`; a Sloth or OpenSLO v1 file too, when
its SLIs query the library's metrics); ``unified-obs rules SPEC`` writes
both files, ``unified-obs dashboard [SPEC]`` the Grafana dashboard (:func:`dashboard_json`).
Everything here is pure: specs in, plain data or text out.
"""

from __future__ import annotations

from typing import Any

from ..errors import require_extra
from ._dashboard import dashboard_json, panel_queries
from ._rule_tests import rule_tests
from ._rules import BURN_ALERTS, RATIO_WINDOWS, BurnAlert, rule_groups
from ._spec import HTTP_BUCKETS, Objective, Spec, availability, latency
from ._spec_file import load, parse

__all__ = [
    "BURN_ALERTS",
    "HTTP_BUCKETS",
    "RATIO_WINDOWS",
    "BurnAlert",
    "Objective",
    "Spec",
    "availability",
    "dashboard_json",
    "latency",
    "load",
    "panel_queries",
    "parse",
    "rule_groups",
    "rule_tests",
    "rule_tests_yaml",
    "rules_yaml",
    "to_yaml",
]


def to_yaml(data: Any) -> str:
    """``data`` as block-style YAML, keys in the order given (needs the ``slo`` extra)."""
    yaml = require_extra("yaml", "slo")
    text: str = yaml.safe_dump(data, sort_keys=False, width=1_000_000, allow_unicode=True)
    return text


def rules_yaml(spec: Spec) -> str:
    """The rule file for ``spec`` (``promtool check rules`` accepts it)."""
    return to_yaml(rule_groups(spec))


def rule_tests_yaml(spec: Spec, rule_file: str) -> str:
    """The ``promtool test rules`` file for ``spec``'s rules, stored at ``rule_file``
    relative to the test file."""
    return to_yaml(rule_tests(spec, rule_file))
