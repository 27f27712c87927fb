"""SLOs as code: specs, the generated rules and their promtool tests, run by real promtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from unified_obs import slo
from unified_obs.errors import ConfigError
from unified_obs.metrics._names import prom_name

PROMTOOL = shutil.which("promtool")


def _promtool(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the real promtool (Debian's ``prometheus`` package)."""
    assert PROMTOOL is not None, "promtool missing: install the Debian package 'prometheus'"
    return subprocess.run(
        [PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def _spec() -> slo.Spec:
    """An HTTP availability and a gRPC latency objective (integer threshold: ``le="1.0"``)."""
    return slo.Spec.of(
        "shop",
        [
            slo.availability("orders-available", 99.9, route="/orders/{order_id}"),
            slo.latency("get-fast", "99", threshold=1, grpc_method="shop.Orders/Get"),
        ],
        match={"job": "shop"},
    )


def _write(directory: Path, spec: slo.Spec) -> None:
    (directory / "rules.yml").write_text(slo.rules_yaml(spec))
    (directory / "rules_test.yml").write_text(slo.rule_tests_yaml(spec, "rules.yml"))


def test_a_latency_threshold_between_buckets_names_the_nearest_boundaries() -> None:
    """0.2 s (the articles' threshold) is not a semconv bucket boundary: the error says
    so at definition time and names 0.1 and 0.25."""
    with pytest.raises(ConfigError, match=r"threshold=.*nearest are 0\.1 and 0\.25"):
        slo.latency("fast", 99, threshold=0.2)
    assert slo.latency("fast", 99, threshold="0.25").threshold == Decimal("0.25")


def test_bad_objectives_raise_config_error_naming_the_field() -> None:
    """Objectives outside (0, 100), bad names and duplicate names are refused."""
    with pytest.raises(ConfigError, match="objective="):
        slo.availability("a", 100)
    with pytest.raises(ConfigError, match="name="):
        slo.availability("Orders API", 99)
    with pytest.raises(ConfigError, match="objectives="):
        slo.Spec.of("shop", [slo.availability("a", 99), slo.availability("a", 98)])
    with pytest.raises(ConfigError, match="grpc_method="):
        slo.availability("a", 99, route="/", grpc_method="a.B/C")


def test_numbers_are_written_without_float_noise() -> None:
    """99.9 % becomes 0.999 and a 0.001 budget; thresholds are exact products such as
    14.4 x 0.001 = 0.0144, never 0.0009999... or 0.9990000000000001."""
    text = slo.rules_yaml(_spec())
    for exact in ("vector(0.999)", "vector(0.001)", "> 0.0144", "> 0.006", "vector(0.99)"):
        assert exact in text
    assert "00000" not in text
    assert "99999" not in text


def test_burn_factors_follow_the_workbook_for_the_real_period() -> None:
    """30 days gives the workbook's 14.4, 6 and 1; 28 days its own 13.44, 5.6 and 0.933..."""
    assert [a.factor(30) for a in slo.BURN_ALERTS] == [Decimal("14.4"), 6, 1]
    assert [str(a.factor(28).normalize())[:6] for a in slo.BURN_ALERTS] == [
        "13.44",
        "5.6",
        "0.9333",
    ]


def test_metric_names_are_the_ones_the_library_exposes() -> None:
    """The rules read the Prometheus names ``/metrics`` gives the duration histograms,
    with and without a metrics namespace."""
    spec = _spec()
    text = slo.rules_yaml(spec)
    for instrument in ("http.server.request.duration", "rpc.server.call.duration"):
        assert prom_name(instrument, "s", "histogram") + "_count{" in text
    prefixed = slo.rules_yaml(slo.Spec.of("shop", spec.objectives, namespace="acme"))
    assert prom_name("http.server.request.duration", "s", "histogram", "acme") in prefixed


def test_promtool_accepts_the_rules_and_their_shipped_tests_pass(tmp_path: Path) -> None:
    """``promtool check rules`` passes, and the generated ``promtool test rules`` file
    passes: a fast burn pages within the workbook's detection time, a slow burn opens a
    ticket without paging, an error rate within budget is quiet, no traffic raises the
    absent-SLI alert."""
    _write(tmp_path, _spec())
    checked = _promtool("check", "rules", "rules.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = _promtool("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    tests = yaml.safe_load((tmp_path / "rules_test.yml").read_text())["tests"]
    assert len(tests) == 8
    assert "pages within 3 minutes" in tests[0]["name"]


def _with_thresholds(rules: dict[str, Any], changes: dict[str, str]) -> dict[str, Any]:
    for group in rules["groups"]:
        for rule in group["rules"]:
            for old, new in changes.items():
                rule["expr"] = re.sub(rf"> {re.escape(old)}(?![0-9])", f"> {new}", rule["expr"])
    return rules


@pytest.mark.parametrize(
    ("changes", "broken"),
    [
        ({"0.0144": "0.144", "0.006": "0.06"}, "pages within"),  # pages 10x too lax
        ({"0.001": "0.01"}, "opens a ticket"),  # a ticket 10x too lax
        ({"0.006": "0.0003"}, "within budget"),  # a page 20x too eager
    ],
)
def test_the_shipped_tests_catch_wrong_thresholds(
    tmp_path: Path, changes: dict[str, str], broken: str
) -> None:
    """The generated tests are not vacuous: with a wrong threshold in the rules, the
    scenario that threshold governs fails."""
    spec = slo.Spec.of("shop", [slo.availability("orders-available", 99.9, route="/o")])
    _write(tmp_path, spec)
    wrong = _with_thresholds(slo.rule_groups(spec), changes)
    (tmp_path / "rules.yml").write_text(slo.to_yaml(wrong))
    tested = _promtool("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert tested.returncode != 0
    assert broken in tested.stdout + tested.stderr


def _expr_test(tmp_path: Path, spec: slo.Spec, group: dict[str, Any]) -> str:
    """Run one hand-written promtool test group against ``spec``'s rules; its output."""
    (tmp_path / "rules.yml").write_text(slo.rules_yaml(spec))
    tests = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [group]}
    (tmp_path / "check_test.yml").write_text(slo.to_yaml(tests))
    tested = _promtool("test", "rules", "check_test.yml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    return tested.stdout


def test_the_period_ratio_weighs_each_hour_by_its_traffic(tmp_path: Path) -> None:
    """One quiet hour with every request failing (10/min) then a busy hour with none
    (1000/min): the period ratio is errors/requests, about 1 %, not the ~50 % an average of
    5-minute ratios (Sloth's optimised period rule) would give."""
    spec = slo.Spec.of("shop", [slo.availability("api", 99, route="/a")])
    series = 'http_server_request_duration_seconds_count{{http_route="/a",{}}}'
    bad, good = 'http_response_status_code="500"', 'http_response_status_code="200"'
    labels = 'sloth_id="shop-api",sloth_service="shop",sloth_slo="api"'
    ratio = 'slo:sli_error:ratio_rate30d{sloth_id="shop-api"}'
    _expr_test(
        tmp_path,
        spec,
        {
            "interval": "1m",
            "input_series": [
                {"series": series.format(bad), "values": "0+10x60 600x60"},
                {"series": series.format(good), "values": "0x60 1000+1000x59"},
            ],
            "promql_expr_test": [
                {
                    "expr": f"({ratio} > bool 0.005) * ({ratio} < bool 0.02)",
                    "eval_time": "120m",
                    "exp_samples": [
                        {
                            "labels": f'{{{labels},sloth_window="30d"}}',
                            "value": 1,
                        }
                    ],
                }
            ],
        },
    )


@pytest.mark.parametrize("le", ["1", "1.0"])
def test_a_latency_sli_matches_both_spellings_of_its_bucket(tmp_path: Path, le: str) -> None:
    """The 1 s bucket scraped as ``le="1"`` (Prometheus 2, other clients) or ``le="1.0"``
    (prometheus_client, Prometheus 3) gives the same bad-request ratio."""
    spec = slo.Spec.of("shop", [slo.latency("fast", 99, threshold=1, route="/a")])
    name = "http_server_request_duration_seconds"
    _expr_test(
        tmp_path,
        spec,
        {
            "interval": "1m",
            "input_series": [
                {"series": f'{name}_count{{http_route="/a"}}', "values": "0+100x10"},
                {"series": f'{name}_bucket{{http_route="/a",le="{le}"}}', "values": "0+75x10"},
                {"series": f'{name}_bucket{{http_route="/a",le="10.0"}}', "values": "0+100x10"},
            ],
            "promql_expr_test": [
                {
                    "expr": 'round(slo:sli_error:ratio_rate5m{sloth_id="shop-fast"}, 0.001)',
                    "eval_time": "10m",
                    "exp_samples": [
                        {
                            "labels": '{sloth_id="shop-fast",sloth_service="shop",sloth_slo="fast",'
                            'sloth_window="5m"}',
                            "value": 0.25,
                        }
                    ],
                }
            ],
        },
    )


def test_a_spec_file_round_trips_into_the_same_spec(tmp_path: Path) -> None:
    """A YAML spec file gives the spec built in Python; an unknown key is a ConfigError
    naming it, and 0.2 s there is refused like in code."""
    path = tmp_path / "slo.yml"
    path.write_text(
        "service: shop\nmatch: {job: shop}\nslos:\n"
        "  - {name: orders-available, objective: 99.9, http_route: '/orders/{order_id}'}\n"
        "  - {name: get-fast, objective: 99, latency: 1, grpc_method: shop.Orders/Get}\n"
    )
    assert slo.load(path) == _spec()
    path.write_text("service: shop\nslos:\n  - {name: a, objective: 99, http_rout: /a}\n")
    with pytest.raises(ConfigError, match="http_rout"):
        slo.load(path)
    path.write_text("service: shop\nslos:\n  - {name: a, objective: 99, latency: 0.2}\n")
    with pytest.raises(ConfigError, match=r"0\.1 and 0\.25"):
        slo.load(path)
