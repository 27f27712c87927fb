"""``unified-obs rules`` and ``unified-obs dashboard``: the commands as installed, their
output checked by real promtool and by the dashboard's structure."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from unified_obs import slo
from unified_obs.slo import _dashboard

PROMTOOL = shutil.which("promtool")
SPEC = """\
service: shop
match: {job: shop}
slos:
  - {name: orders-available, objective: 99.9, http_route: "/orders/{order_id}"}
  - {name: get-fast, objective: 99, latency: 0.25, grpc_method: shop.Orders/Get}
"""


def _command(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the installed ``unified-obs`` console script."""
    script = shutil.which("unified-obs", path=str(Path(sys.executable).parent))
    assert script is not None, "the unified-obs console script is not installed"
    return subprocess.run(
        [script, *map(str, args)], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None, "promtool missing: install the Debian package 'prometheus'"
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_rules_writes_rules_and_tests_that_promtool_accepts(tmp_path: Path) -> None:
    """``unified-obs rules SPEC -o rules.yml`` writes the rules and ``rules_test.yml``;
    ``promtool check rules`` and ``promtool test rules`` both pass on them, and without
    ``-o`` the same rules go to stdout."""
    (tmp_path / "slo.yml").write_text(SPEC)
    done = _command("rules", "slo.yml", "-o", "rules.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    checked = _promtool("check", "rules", "rules.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = _promtool("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    printed = _command("rules", "slo.yml", cwd=tmp_path)
    assert printed.stdout == (tmp_path / "rules.yml").read_text()


def test_rules_refuses_a_threshold_between_buckets_with_exit_1(tmp_path: Path) -> None:
    """A 200 ms latency objective exits 1 and names the nearest boundaries on stderr;
    nothing is written to stdout."""
    (tmp_path / "slo.yml").write_text(SPEC.replace("latency: 0.25", "latency: 0.2"))
    done = _command("rules", "slo.yml", cwd=tmp_path)
    assert done.returncode == 1
    assert "0.1 and 0.25" in done.stderr
    assert done.stdout == ""


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def test_dashboard_without_a_spec_is_a_well_formed_grafana_dashboard(tmp_path: Path) -> None:
    """``unified-obs dashboard`` needs no argument: unique panel ids, panels inside the
    24-column grid without overlaps, every query through the ``${datasource}`` variable,
    exemplars on the duration panels, and a description on every panel."""
    done = _command("dashboard", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    board = json.loads(done.stdout)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        columns, lines = (
            range(grid["x"], grid["x"] + grid["w"]),
            range(grid["y"], grid["y"] + grid["h"]),
        )
        area = {(x, y) for x in columns for y in lines}
        assert not cells & area, f"{panel['title']} overlaps another panel"
        cells |= area
    for panel in _panels(board):
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["description"]
        assert panel["targets"]
        assert ("duration" in panel["title"]) == all(t["exemplar"] for t in panel["targets"])
    titles = {p["title"] for p in board["panels"]}
    expected = {"HTTP requests per second", "gRPC server error share", "Event-loop lag p50 / p99"}
    assert expected <= titles


def test_dashboard_with_a_spec_adds_a_row_per_objective(tmp_path: Path) -> None:
    """With a spec the dashboard gains one SLO row per objective (budget remaining, burn
    rate, error ratio per window) and every selector carries the spec's ``match``."""
    (tmp_path / "slo.yml").write_text(SPEC)
    done = _command("dashboard", "slo.yml", "--protocol", "http", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    board = json.loads(done.stdout)
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows[-2:] == ["SLO orders-available", "SLO get-fast"]
    assert not any(r.startswith("gRPC") for r in rows)
    exprs = [t["expr"] for p in _panels(board) for t in p["targets"]]
    assert 'slo:period_error_budget_remaining:ratio{sloth_id="shop-orders-available"}' in exprs
    assert all('job="shop"' in e for e in exprs if "http_server" in e)


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """Each panel query, with Grafana's ``$__rate_interval`` put in, passes ``promtool
    check rules`` as the expression of a recording rule."""
    (tmp_path / "slo.yml").write_text(SPEC)
    spec = slo.load(tmp_path / "slo.yml")
    rules = [
        {"record": f"panel:query:{n}", "expr": expr.replace("$__rate_interval", "5m")}
        for n, (_, expr) in enumerate(slo.panel_queries(spec))
    ]
    (tmp_path / "queries.yml").write_text(slo.to_yaml({"groups": [{"name": "q", "rules": rules}]}))
    checked = _promtool("check", "rules", "queries.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(rules)} rules found" in checked.stdout


_ON_PYTHON_3_10 = """\
import sys
sys.modules["grafana_foundation_sdk"] = None  # the slo extra skips the SDK below 3.11
sys.version_info = (3, 10, 14, "final", 0)
from unified_obs.cli import main
sys.exit(main(["dashboard"]))
"""


def test_dashboard_on_python_3_10_says_it_needs_3_11_and_exits_1(tmp_path: Path) -> None:
    """Without grafana-foundation-sdk on Python 3.10 (it supports 3.11+, so the ``slo``
    extra leaves it out), ``unified-obs dashboard`` exits 1 with one line naming the
    Python it needs and the one it runs, instead of a traceback or a useless pip line."""
    done = subprocess.run(
        [sys.executable, "-c", _ON_PYTHON_3_10],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "needs Python 3.11 or newer" in done.stderr
    assert "this is Python 3.10.14" in done.stderr
    assert "pip install" not in done.stderr


def test_dashboard_without_the_sdk_on_3_11_names_the_extra() -> None:
    """On Python 3.11+ a missing SDK is a missing extra: the message is the pip line."""
    assert "pip install 'unified-obs[slo]'" in _dashboard.sdk_missing((3, 12, 1))
    assert "needs Python 3.11" in _dashboard.sdk_missing((3, 10, 0))
