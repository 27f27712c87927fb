"""examples/deploy: the SLO rules and dashboard stay generated from ``slo.yml``, and every
manifest there passes a real validator (promtool, kubernetes-validate)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from unified_obs import slo

DEPLOY = Path(__file__).resolve().parent.parent / "examples" / "deploy"
PROMTOOL = shutil.which("promtool")


def _run(*command: str, cwd: Path = DEPLOY) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, timeout=120, cwd=cwd)


def _promtool(*args: str, cwd: Path = DEPLOY) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None, "promtool missing: install the Debian package 'prometheus'"
    return _run(PROMTOOL, *args, cwd=cwd)


def test_rules_and_dashboard_are_generated_from_the_spec() -> None:
    """rules.yml, rules_test.yml and dashboard.json are exactly what ``unified-obs rules``
    and ``unified-obs dashboard --protocol http`` make of slo.yml today (regenerate them
    with the commands at the top of slo.yml)."""
    spec = slo.load(DEPLOY / "slo.yml")
    assert (DEPLOY / "rules.yml").read_text() == slo.rules_yaml(spec)
    assert (DEPLOY / "rules_test.yml").read_text() == slo.rule_tests_yaml(spec, "rules.yml")
    board = slo.dashboard_json(spec, protocols=("http",)) + "\n"
    assert (DEPLOY / "dashboard.json").read_text() == board


def test_prometheus_config_and_rules_pass_promtool() -> None:
    """``promtool check config`` accepts prometheus.yml (and the rule file it loads), and
    the shipped ``promtool test rules`` file passes."""
    config = _promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    assert "1 rule files found" in config.stdout
    tested = _promtool("test", "rules", "rules_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def _kubernetes_validate(*files: str, cwd: Path = DEPLOY) -> subprocess.CompletedProcess[str]:
    script = shutil.which("kubernetes-validate", path=str(Path(sys.executable).parent))
    assert script is not None, "kubernetes-validate missing: it is in the test dependencies"
    return _run(script, "--strict", *files, cwd=cwd)


def test_deployment_passes_the_kubernetes_schema_strictly(tmp_path: Path) -> None:
    """deployment.yaml validates against the Kubernetes schemas (kubernetes-validate, strict:
    unknown fields are errors); a misspelt field in a copy of it does not."""
    done = _kubernetes_validate("deployment.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed for resource deployment/shop" in done.stdout + done.stderr
    broken = tmp_path / "deployment.yaml"
    text = (DEPLOY / "deployment.yaml").read_text()
    assert "terminationGracePeriodSeconds:" in text
    broken.write_text(text.replace("terminationGracePeriodSeconds:", "terminationGracePeriod:"))
    assert _kubernetes_validate(str(broken), cwd=tmp_path).returncode != 0
