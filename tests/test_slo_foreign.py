"""Sloth and OpenSLO spec files in ``unified-obs rules``: read when their SLIs query the
library's own metrics (then the rules and their promtool tests pass), refused with an
error naming what cannot be honoured otherwise.  The specs follow the projects' own
examples (Sloth's examples/getting-started.yml and k8s-getting-started.yml, OpenSLO's
examples/budgeting-method/*.yaml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from unified_obs import slo
from unified_obs.errors import ConfigError

PROMTOOL = shutil.which("promtool")
SPECS = Path(__file__).with_name("slo_specs")

# Sloth's getting-started example, its SLI pointed at the library's metrics (and without
# the alert_for plugin and the alerts' `for`, which the workbook's window pairs replace).
SLOTH = (SPECS / "sloth-getting-started.yml").read_text()

SLOTH_K8S = (SPECS / "sloth-k8s-getting-started.yml").read_text()

# Sloth's getting-started SLI as published: a metric the library does not emit.
SLOTH_FOREIGN_METRIC = SLOTH.replace(
    "http_server_request_duration_seconds_count", "http_request_duration_seconds_count"
).replace('http_response_status_code=~"5.."', 'code=~"(5..|429)"')

# OpenSLO v1, shaped like its budgeting-method examples, over the gRPC duration histogram:
# an SLI document referenced by an SLO, and an SLO with its own threshold indicator.
OPENSLO = (SPECS / "openslo-shop.yml").read_text()

# OpenSLO's own examples/budgeting-method/timeslices-slo.yaml, as published.
OPENSLO_TIMESLICES = (SPECS / "openslo-timeslices.yml").read_text()


def _load(tmp_path: Path, text: str) -> slo.Spec:
    path = tmp_path / "spec.yml"
    path.write_text(text)
    return slo.load(path)


def _rules_pass_promtool(tmp_path: Path, text: str) -> str:
    """``unified-obs rules`` on ``text``; promtool checks the rules and runs their tests."""
    (tmp_path / "spec.yml").write_text(text)
    script = shutil.which("unified-obs", path=str(Path(sys.executable).parent))
    assert script is not None, "the unified-obs console script is not installed"
    done = subprocess.run(
        [script, "rules", "spec.yml", "-o", "rules.yml"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert PROMTOOL is not None, "promtool missing: install the Debian package 'prometheus'"
    for args in (["check", "rules", "rules.yml"], ["test", "rules", "rules_test.yml"]):
        ran = subprocess.run(
            [PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
    return (tmp_path / "rules.yml").read_text()


def test_a_sloth_spec_over_our_metrics_becomes_our_objectives(tmp_path: Path) -> None:
    """Sloth's events SLIs over the library's metrics read back as an availability and a
    latency objective (the job matcher for the whole spec, the route as the target)."""
    spec = _load(tmp_path, SLOTH)
    available, fast = spec.objectives
    assert (spec.service, spec.matchers, spec.namespace) == (
        "myservice",
        {"job": "myservice"},
        None,
    )
    assert (available.kind, available.objective, available.target) == (
        "availability", Decimal("99.9"), None,
    )  # fmt: skip
    assert (fast.kind, fast.threshold, fast.target) == (
        "latency", Decimal("0.25"), "/orders/{order_id}",
    )  # fmt: skip


def test_sloth_rules_keep_sloths_labels_and_alert_names_and_pass_promtool(
    tmp_path: Path,
) -> None:
    """The rules of a Sloth spec carry its labels on every rule, its alert names, and the
    page/ticket alerts' own labels (their severity wins); promtool accepts them and the
    shipped tests (fast burn pages, slow burn tickets, within budget nothing) pass."""
    rules = slo.rule_groups(_load(tmp_path, SLOTH))["groups"]
    alerts = {
        (r["alert"], r["labels"]["severity"]): r for g in rules for r in g["rules"] if "alert" in r
    }
    page = alerts["MyServiceHighErrorRate", "pageteam"]
    assert page["labels"]["routing_key"] == "myteam"
    assert page["labels"]["category"] == "availability"
    assert page["annotations"]["summary"] == "High error rate on 'myservice' requests responses"
    assert alerts["MyServiceHighErrorRate", "slack"]["labels"]["slack_channel"] == "#alerts-myteam"
    assert ("OrdersSlow", "page") in alerts
    assert ("MyServiceHighErrorRateSLIAbsent", "ticket") in alerts
    assert all(r["labels"]["owner"] == "myteam" for g in rules for r in g["rules"])
    _rules_pass_promtool(tmp_path, SLOTH)


def test_the_kubernetes_form_of_a_sloth_spec_reads_the_same(tmp_path: Path) -> None:
    """``kind: PrometheusServiceLevel`` with its camelCase keys gives the same spec as
    the plain file."""
    plain = SLOTH.split('  - name: "orders-fast"')[0]
    assert _load(tmp_path, SLOTH_K8S) == _load(tmp_path, plain)


def test_only_a_backtick_quoted_matcher_value_loses_its_backticks(tmp_path: Path) -> None:
    """PromQL's raw string `` `myservice` `` is ``myservice``; a double-quoted value
    keeps the backticks it contains (``job="`myservice`"`` matches `` `myservice` ``)."""
    raw = SLOTH.replace('job="myservice"', "job=`myservice`")
    assert _load(tmp_path, raw).matchers == {"job": "myservice"}
    quoted = SLOTH.replace('job="myservice"', 'job="`myservice`"')
    assert _load(tmp_path, quoted).matchers == {"job": "`myservice`"}


def test_sloths_published_example_is_refused_naming_its_metric(tmp_path: Path) -> None:
    """Sloth's getting-started SLI reads ``http_request_duration_seconds_count``, a
    metric the library does not emit: the error names it and the ones it could read."""
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, SLOTH_FOREIGN_METRIC)
    message = str(caught.value)
    assert "http_request_duration_seconds_count" in message
    assert "http_server_request_duration_seconds_count" in message


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            (
                "sli:\n      events:",
                "sli:\n      raw:\n        error_ratio_query: x\n      events:",
            ),
            "sli",
        ),
        (("      page_alert:\n", "      page_alert:\n        for: 5m\n"), "page_alert.for"),
        (
            ("slos:\n", "slo_plugins:\n  chain: [{id: sloth.dev/contrib/alert_for/v1}]\nslos:\n"),
            "slo_plugins",
        ),
        (('le="0.25"', 'le="0.2"'), "0.1 and 0.25"),
        (('http_response_status_code=~"5.."', 'http_response_status_code=~"(5..|429)"'), '=~"5.."'),
    ],
    ids=["raw-sli", "alert-for", "slo-plugins", "between-buckets", "other-errors"],
)
def test_what_sloth_can_say_but_we_cannot_honour_is_refused(
    tmp_path: Path, change: tuple[str, str], named: str
) -> None:
    """A raw ratio SLI, an alert's ``for``, SLO plugins, a latency threshold between
    buckets and a different error set are each a ConfigError naming the field or what
    would be accepted (never rules that silently measure something else)."""
    assert change[0] in SLOTH
    with pytest.raises(ConfigError, match=named.replace(".", r"\.").replace("(", r"\(")):
        _load(tmp_path, SLOTH.replace(*change, 1))


def test_an_openslo_file_over_our_metrics_becomes_our_objectives(tmp_path: Path) -> None:
    """OpenSLO v1: an SLO referring to an SLI document (ratioMetric good/total) and an
    SLO with a thresholdMetric over the gRPC duration histogram read back as an
    availability and a latency objective over a 28-day period."""
    spec = _load(tmp_path, OPENSLO)
    available, fast = spec.objectives
    assert (spec.service, spec.period_days, spec.matchers) == ("shop", 28, {"job": "shop"})
    assert (available.name, available.kind, available.objective, available.protocol) == (
        "get-order-available", "availability", Decimal("99.5"), "grpc",
    )  # fmt: skip
    assert available.target == "shop.Orders/Get"
    assert (fast.name, fast.kind, fast.threshold, fast.objective) == (
        "get-order-fast", "latency", Decimal("0.25"), Decimal("99"),
    )  # fmt: skip


def test_openslo_rules_pass_promtool(tmp_path: Path) -> None:
    """The OpenSLO file's rules pass ``promtool check rules`` and their shipped tests
    pass ``promtool test rules`` with the 28-day period's own burn factors."""
    rules = _rules_pass_promtool(tmp_path, OPENSLO)
    assert "sloth_id: shop-get-order-fast" in rules


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (OPENSLO_TIMESLICES, "budgetingMethod"),
        (OPENSLO_TIMESLICES.replace("Timeslices", "Occurrences"), "isRolling"),
        (OPENSLO.replace("type: Prometheus", "type: Datadog", 1), "metricSource.type"),
        (OPENSLO.replace("op: lte", "op: gt"), "op"),
        (OPENSLO.replace("alertPolicies:", "alertPolicies: [fast-burn]"), "alertPolicies"),
        (OPENSLO.replace("openslo/v1", "openslo/v1alpha"), "apiVersion"),
    ],
    ids=["timeslices", "calendar", "datadog", "op-gt", "alert-policies", "v1alpha"],
)
def test_what_openslo_can_say_but_we_cannot_honour_is_refused(
    tmp_path: Path, text: str, named: str
) -> None:
    """OpenSLO's own Timeslices example, a calendar window, a non-Prometheus source, a
    "greater than" threshold, alert policies and another API version are each a
    ConfigError naming the field."""
    with pytest.raises(ConfigError, match=named):
        _load(tmp_path, text)


def test_the_dashboard_takes_a_sloth_spec_too(tmp_path: Path) -> None:
    """``slo.dashboard_json`` on a Sloth spec adds one SLO row per objective, and its
    RED selectors carry the spec's job matcher."""
    pytest.importorskip("grafana_foundation_sdk", reason="grafana-foundation-sdk needs 3.11+")
    spec = _load(tmp_path, SLOTH)
    queries = slo.panel_queries(spec)
    rows = [title for title, _ in slo._dashboard.rows(spec)]
    assert rows[-2:] == ["SLO requests-availability", "SLO orders-fast"]
    assert all('job="myservice"' in expr for _, expr in queries if "http_server" in expr)
    assert '"title": "SLO orders-fast"' in slo.dashboard_json(spec)
