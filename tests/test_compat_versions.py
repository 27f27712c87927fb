"""The declared dependency floors are the versions CI installs (`./run compat`)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, cast

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
FLOOR = ROOT / ".ci" / "constraints" / "floor.txt"
UNPINNED = frozenset(
    {
        "pyyaml",  # the slo extra: plain data files, no guarded path
        "grafana-foundation-sdk",
        "typing-extensions",  # TypedDict and Unpack only; test tools need its newest release
    }
)


def _pyproject() -> dict[str, Any]:
    try:
        tomllib = importlib.import_module("tomllib")  # 3.11+; mypy checks for 3.10
    except ImportError:
        pytest.skip("tomllib is 3.11+")
    return cast(dict[str, Any], tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8")))


def _declared_floors() -> dict[str, str]:
    """Every runtime requirement (core and extras) with its lower bound."""
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines.extend(extra)
    floors: dict[str, str] = {}
    for line in lines:
        requirement = Requirement(line)
        lower = [s.version for s in requirement.specifier if s.operator == ">="]
        if lower:
            floors[requirement.name.lower()] = lower[0]
    return floors


def _pinned() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in FLOOR.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def test_floor_constraints_pin_every_declared_lower_bound() -> None:
    """Each runtime dependency's `>=` bound in pyproject.toml is pinned, to the same
    version (at patch level), in the floor environment CI installs; so the floor we
    declare is a floor we test."""
    pinned = _pinned()
    for name, floor in _declared_floors().items():
        if name in UNPINNED:
            continue
        assert name in pinned, f"{name} has a floor ({floor}) that CI does not install"
        assert pinned[name].startswith(floor), (name, floor, pinned[name])


def test_opentelemetry_packages_share_one_floor() -> None:
    """API, SDK, exporters and proto are released together: one floor for all of them,
    covering at least the last six minor releases docs/compatibility.md's table lists."""
    otel = {n: v for n, v in _pinned().items() if n.startswith("opentelemetry-")}
    assert len(set(otel.values())) == 1, otel
    assert {"opentelemetry-api", "opentelemetry-sdk"} <= set(otel)
