"""The public surface: ``__all__`` is sorted, complete and every name in it resolves."""

from __future__ import annotations
import __future__

import importlib
from types import ModuleType

import pytest

import unified_obs

# Public modules whose ``__all__`` is part of the contract (DESIGN §2).
_PUBLIC_MODULES = ("unified_obs", "unified_obs.testing", "unified_obs.config", "unified_obs.errors")


def _public_names(module: ModuleType) -> set[str]:
    """Names a user can reach with ``from module import name``: no modules, no privates,
    no ``from __future__`` features."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, ModuleType)
        and not isinstance(value, __future__._Feature)
    }


@pytest.mark.parametrize("name", _PUBLIC_MODULES)
def test_all_is_sorted_and_unique(name: str) -> None:
    """``__all__`` is sorted and has no duplicates."""
    exported = list(importlib.import_module(name).__all__)
    assert exported == sorted(exported)
    assert len(exported) == len(set(exported))


@pytest.mark.parametrize("name", _PUBLIC_MODULES)
def test_every_name_in_all_resolves(name: str) -> None:
    """Every name listed in ``__all__`` exists on the module."""
    module = importlib.import_module(name)
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert missing == []


def test_package_all_is_complete() -> None:
    """Every public name the package re-exports is listed in ``__all__``."""
    unlisted = sorted(_public_names(unified_obs) - set(unified_obs.__all__))
    assert unlisted == []


def test_contract_names_are_exported() -> None:
    """The foundation's contract (DESIGN §2) is reachable from the top-level package."""
    for name in (
        "setup",
        "shutdown",
        "get_logger",
        "bind",
        "unbind",
        "bound",
        "wrap_context",
        "current_trace_ids",
        "ConfigError",
        "Settings",
        "Telemetry",
        "ShutdownResult",
    ):
        assert name in unified_obs.__all__, name


def test_config_error_is_a_value_error() -> None:
    """Callers can catch configuration mistakes as ValueError."""
    assert issubclass(unified_obs.ConfigError, ValueError)
    assert issubclass(unified_obs.ConfigError, unified_obs.UnifiedObsError)
