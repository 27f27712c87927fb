"""A real Prometheus scrapes the deploy example under uvicorn and the gRPC example, with
the generated SLO rules loaded: every query of the shipped dashboard, of the default
dashboard (HTTP and gRPC rows) and every recording rule returns data, and the duration
histogram's exemplars carry trace ids."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.otlp_receiver import otlp_receiver
from unified_obs import slo

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "examples" / "deploy"
PROMETHEUS = shutil.which("prometheus")
RATE_WINDOW = "10s"  # stands for Grafana's $__rate_interval: 10 scrapes at 1 s
LOAD_PATHS = ("/order", "/", "/readyz", "/order", "/prices")
MAY_BE_ABSENT = frozenset(
    {"unified_obs_metrics_overflow_total", "unified_obs_export_failures_total"}
)
"""Counters that exist only once something went wrong (their panels add ``or vector(0)``)."""
SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\{([^}]*)\}")
MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*"')
GREETER = """
import sys, time
from examples import grpc_service as greeter

server, port = greeter.build_server()
greeter.tel.serve_admin(port=int(sys.argv[1]))
deadline = time.monotonic() + 150  # bounded: the test stops it long before
while time.monotonic() < deadline:
    greeter.run_client(f"127.0.0.1:{port}")
    time.sleep(0.2)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


def _wait_until_up(url: str, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{process.args!r} exited with {process.returncode}"
        try:
            if _get(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)  # polling a server that is starting, not an assertion
    raise AssertionError(f"{url} did not answer 200 within {seconds} s")


@contextmanager
def _process(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` (output to ``log``) for the block; terminated after it."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _shop(port: int, endpoint: str, log: Path) -> tuple[list[str], dict[str, str], Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS_", "OTEL_"))}
    env.update(PYTHONPATH=str(ROOT), OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
    env.update(OTEL_BSP_SCHEDULE_DELAY="200", UNIFIED_OBS_LOG_LEVEL="warning")
    command = [sys.executable, "-m", "uvicorn", "examples.deploy.app:app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return command, env, log


def _greeter(admin_port: int, log: Path) -> tuple[list[str], dict[str, str], Path]:
    """The gRPC example serving and calling itself, its /metrics on ``admin_port``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS_", "OTEL_"))}
    env.update(PYTHONPATH=str(ROOT))
    return [sys.executable, "-c", GREETER, str(admin_port)], env, log


GREETER_SPEC = slo.Spec.of(
    "greeter",
    [
        slo.availability("hello-available", 99.9, grpc_method="demo.Greeter/SayHello"),
        slo.latency("hellos-fast", 99, threshold=0.1, grpc_method="demo.Greeter/SayHellos"),
    ],
    match={"job": "greeter"},
)
"""gRPC objectives over the greeter, so gRPC SLIs are proven against real series too."""


def _prometheus_config(directory: Path, shop_port: int, greeter_port: int) -> Path:
    shutil.copy(DEPLOY / "rules.yml", directory / "rules.yml")
    (directory / "greeter_rules.yml").write_text(slo.rules_yaml(GREETER_SPEC))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yml", "greeter_rules.yml"],
        "scrape_configs": [
            {"job_name": "shop", "static_configs": [{"targets": [f"127.0.0.1:{shop_port}"]}]},
            {
                "job_name": "greeter",
                "static_configs": [{"targets": [f"127.0.0.1:{greeter_port}"]}],
            },
        ],
    }
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, body = _get(url)
    answer = json.loads(body)
    assert status == 200, (expr, answer)
    assert answer["status"] == "success", (expr, answer)
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def _has_data(prometheus: str, expr: str) -> bool:
    """At least one series with a finite value (a quantile of nothing is NaN)."""
    return any(math.isfinite(float(s["value"][1])) for s in _query(prometheus, expr))


def _panel_queries(board: dict[str, Any], which: str) -> dict[str, str]:
    return {
        f"{which} panel {p['title']!r} {t['refId']}": t["expr"].replace(
            "$__rate_interval", RATE_WINDOW
        )
        for p in board["panels"]
        for t in p.get("targets", [])
    }


def _expected_queries() -> dict[str, str]:
    """Every query of the shipped dashboard and of the default one, and every recording
    rule of the shipped rules and of the greeter's, by what it is."""
    queries = _panel_queries(json.loads((DEPLOY / "dashboard.json").read_text()), "shipped")
    queries |= _panel_queries(json.loads(slo.dashboard_json(None)), "default")
    groups = yaml.safe_load((DEPLOY / "rules.yml").read_text())["groups"]
    groups += slo.rule_groups(GREETER_SPEC)["groups"]
    for group in groups:
        for rule in group["rules"]:
            if "record" in rule:
                selector = ",".join(f'{k}="{v}"' for k, v in rule["labels"].items())
                queries[f"rule {rule['record']} {selector}"] = f"{rule['record']}{{{selector}}}"
    return queries


def _load(shop: str, rounds: int) -> None:
    """A bounded burst of requests (``/order`` takes 200 ms: they run side by side)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda path: _get(shop + path), LOAD_PATHS * rounds))


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_every_dashboard_query_and_rule_returns_data(tmp_path: Path) -> None:
    """Under generated load (HTTP requests to the shop, gRPC calls of every shape to the
    greeter), each panel query of examples/deploy/dashboard.json and of the default
    dashboard (with a 10 s rate window for ``$__rate_interval``) and each recording rule of
    rules.yml and of gRPC objectives over the greeter returns a finite value from a real
    Prometheus, on names and labels Prometheus has seen: no panel or rule is left empty by a
    wrong name or label.  The duration histogram's exemplars reach Prometheus carrying the
    label grafana-datasources.yml links to traces."""
    assert PROMETHEUS is not None, "prometheus missing: install the Debian package 'prometheus'"
    shop_port, prom_port, greeter_port = _free_port(), _free_port(), _free_port()
    shop, prometheus = f"http://127.0.0.1:{shop_port}", f"http://127.0.0.1:{prom_port}"
    config = _prometheus_config(tmp_path, shop_port, greeter_port)
    prom_command = [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path}/db"]
    prom_command += [f"--web.listen-address=127.0.0.1:{prom_port}"]
    prom_command += ["--enable-feature=exemplar-storage"]
    with (
        otlp_receiver() as (endpoint, _received),
        _process(*_shop(shop_port, endpoint, tmp_path / "shop.log")) as app,
        _process(*_greeter(greeter_port, tmp_path / "greeter.log")) as greeter,
    ):
        _wait_until_up(shop + "/readyz", app)
        _wait_until_up(f"http://127.0.0.1:{greeter_port}/readyz", greeter)
        with _process(prom_command, dict(os.environ), tmp_path / "prometheus.log") as server:
            _wait_until_up(prometheus + "/-/ready", server)
            missing = _drive_until_answered(shop, prometheus, _expected_queries())
            exemplars = _exemplar_trace_ids(prometheus)
            unknown = _unknown_names(prometheus, _expected_queries().values())
    assert not missing, "no data for:\n" + "\n".join(f"{k}: {v}" for k, v in missing.items())
    assert not unknown, "names Prometheus never saw:\n" + "\n".join(sorted(unknown))
    assert exemplars, f"no exemplar with a {_exemplar_label()!r} label reached Prometheus"


def _unknown_names(prometheus: str, exprs: Any) -> set[str]:
    """Metric and label names the queries select on that no scraped series has: a typo
    in a matcher that ``or 0 * total`` would otherwise hide (no 5xx is data too)."""
    wanted: dict[str, set[str]] = {}
    for expr in exprs:
        for metric, matchers in SELECTOR.findall(expr):
            if ":" not in metric:  # recording rules are checked by having data
                wanted.setdefault(metric, set()).update(MATCHER.findall(matchers))
    unknown = set()
    for metric, labels in wanted.items():
        url = f"{prometheus}/api/v1/labels?" + urllib.parse.urlencode({"match[]": metric})
        seen = set(json.loads(_get(url)[1])["data"])
        if not seen and metric not in MAY_BE_ABSENT:
            unknown.add(metric)
        unknown |= {f"{metric}{{{label}}}" for label in labels - seen if seen}
    return unknown


def _drive_until_answered(shop: str, prometheus: str, queries: dict[str, str]) -> dict[str, str]:
    """Load the shop and ask Prometheus until every query has data (60 s at most)."""
    waiting = dict(queries)
    deadline = time.monotonic() + 60
    while waiting and time.monotonic() < deadline:
        _load(shop, rounds=4)
        waiting = {k: q for k, q in waiting.items() if not _has_data(prometheus, q)}
    return waiting


def _exemplar_label() -> str:
    """The exemplar label Grafana's datasource (grafana-datasources.yml) links to traces."""
    provisioning = yaml.safe_load((DEPLOY / "grafana-datasources.yml").read_text())
    prometheus = next(d for d in provisioning["datasources"] if d["type"] == "prometheus")
    destinations = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    return str(destinations[0]["name"])


def _exemplar_trace_ids(prometheus: str) -> set[str]:
    """Values of the datasource's trace-id label on the shop's duration exemplars."""
    label = _exemplar_label()
    now = time.time()
    query = 'http_server_request_duration_seconds_bucket{job="shop"}'
    url = f"{prometheus}/api/v1/query_exemplars?" + urllib.parse.urlencode(
        {"query": query, "start": now - 300, "end": now + 5}
    )
    status, body = _get(url)
    assert status == 200, body
    return {
        e["labels"].get(label, "")
        for series in json.loads(body)["data"]
        for e in series["exemplars"]
    } - {""}
