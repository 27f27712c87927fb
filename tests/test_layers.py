"""Import direction (DESIGN §3), checked by walking every module of ``src/unified_obs`` with ast.

The rules are data: each names the imports it guards and the modules allowed to make
them.  Every module is checked, including ones added later, so a new module obeys the
SDK, logs and grpc rules without being listed anywhere.
"""

from __future__ import annotations

import ast
import gc
from dataclasses import dataclass
from pathlib import Path

import pytest

_PACKAGE = "unified_obs"
_SRC = Path(__file__).resolve().parents[1] / "src" / _PACKAGE

# Adapters use the OpenTelemetry API only, so they are safe without setup() (DESIGN §3).
ADAPTERS = frozenset({"asgi", "wsgi", "_http", "decorators", "endpoints", "context", "grpc"})


@dataclass(frozen=True)
class Rule:
    """Importing anything under ``guarded`` is allowed only in ``allowed`` (a module key like
    ``logs``; a package key like ``grpc`` also allows its submodules)."""

    name: str
    guarded: tuple[str, ...]
    allowed: frozenset[str]

    def applies_to(self, imported: str) -> bool:
        """Whether ``imported`` (a dotted module name) falls under this rule."""
        return any(imported == g or imported.startswith(g + ".") for g in self.guarded)

    def permits(self, module: str) -> bool:
        """Whether ``module`` (a key relative to the package) may make the import."""
        return any(module == a or module.startswith(a + ".") for a in self.allowed)


RULES = (
    Rule(
        "only tracing/metrics/logs/resource/_setup/testing import the OpenTelemetry SDK",
        ("opentelemetry.sdk",),
        frozenset({"tracing", "metrics", "logs", "resource", "_setup", "testing"})
        # private parts split off the metrics layer (its OTLP exporter and pipeline builder)
        # and the tracing layer (its lean tracer and batch processor)
        | {"_otlp_metrics", "_metrics_pipeline", "_spans", "_lean_span", "_batch"},
    ),
    Rule(
        "only logs imports the underscored OpenTelemetry logs modules",
        ("opentelemetry._logs", "opentelemetry.sdk._logs"),
        frozenset({"logs"}),
    ),
    Rule("only grpc/ imports grpc", ("grpc",), frozenset({"grpc"})),
    Rule(
        "nothing but tests imports unified_obs.testing",
        (f"{_PACKAGE}.testing",),
        frozenset({"testing", "pytest_plugin"}),
    ),
)


def _module_key(path: Path) -> str:
    """``grpc/server.py`` -> ``grpc.server``; ``__init__.py`` -> ``""``."""
    parts = list(path.relative_to(_SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _absolute(module_key: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a (possibly relative) ``from ... import`` names."""
    if node.level == 0:
        return node.module or ""
    base = [_PACKAGE, *filter(None, module_key.split("."))]
    if not is_package:
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _is_submodule(dotted: str) -> bool:
    """Whether ``unified_obs.x.y`` is a module or package file in the source tree."""
    relative = Path(*dotted.split(".")[1:])
    return (_SRC / relative).with_suffix(".py").exists() or (_SRC / relative).is_dir()


def _parse(source: str) -> ast.Module:
    """``ast.parse`` with the collector paused.  On CPython 3.11.7 a collection during
    the parse can run a finalizer that formats a traceback, which parses a line of its
    own (caret anchors) and corrupts the outer parse's recursion count: SystemError
    "AST constructor recursion depth mismatch".  A gRPC test's dropped future did that
    once in a full run."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(source)
    finally:
        if enabled:
            gc.enable()


def imports_of(source: str, module_key: str, is_package: bool = False) -> list[tuple[str, int]]:
    """Every module ``source`` imports (anywhere, lazy imports included), with line numbers.
    ``from a import b`` yields both ``a`` and ``a.b``, since ``b`` may be a module."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(_parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module_key, is_package, node)
            found.append((base, node.lineno))
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


def violations(source: str, module_key: str, is_package: bool = False) -> list[str]:
    """Rule breaches in one module's source, one per (import statement, rule)."""
    problems: dict[tuple[int, str], str] = {}
    for imported, line in imports_of(source, module_key, is_package):
        for rule in RULES:
            if rule.applies_to(imported) and not rule.permits(module_key):
                problems.setdefault(
                    (line, rule.name), f"{module_key or '__init__'}:{line} imports {imported}"
                )
    return [f"{where}: {rule}" for (_, rule), where in problems.items()]


def _top_level_package_imports(source: str, module_key: str, is_package: bool) -> list[str]:
    """``import unified_obs`` or ``from unified_obs import <name that is not a module>``."""
    problems = []
    for node in ast.walk(_parse(source)):
        if isinstance(node, ast.Import):
            problems += [
                f"{module_key}:{node.lineno} imports {a.name}"
                for a in node.names
                if a.name == _PACKAGE
            ]
        elif isinstance(node, ast.ImportFrom) and _absolute(module_key, is_package, node) == (
            _PACKAGE
        ):
            problems += [
                f"{module_key}:{node.lineno} imports {a.name} from the top-level package"
                for a in node.names
                if not _is_submodule(f"{_PACKAGE}.{a.name}")
            ]
    return problems


def _sources() -> list[Path]:
    return sorted(_SRC.rglob("*.py"))


def test_adapters_are_not_allowed_the_sdk() -> None:
    """The table keeps every adapter (and all of grpc/) off the SDK."""
    (sdk_rule,) = [rule for rule in RULES if "opentelemetry.sdk" in rule.guarded]
    for adapter in (*ADAPTERS, "grpc.server", "grpc.aio_client"):
        assert not sdk_rule.permits(adapter), adapter


def test_the_walk_sees_the_foundation_modules() -> None:
    """The checker really walks the package (guards against a wrong path passing vacuously)."""
    keys = {_module_key(path) for path in _sources()}
    assert {"", "config", "logs", "tracing", "_setup", "testing", "context"} <= keys


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(_SRC)))
def test_module_obeys_the_import_rules(path: Path) -> None:
    """Each module imports only what its layer allows."""
    source = path.read_text()
    key, package = _module_key(path), _is_package(path)
    assert violations(source, key, package) == []
    assert _top_level_package_imports(source, key, package) == []


@pytest.mark.parametrize(
    ("source", "module_key", "expected"),
    [
        ("from opentelemetry.sdk.trace import TracerProvider", "asgi", 1),
        ("from opentelemetry.sdk.trace import TracerProvider", "grpc.server", 1),
        ("def f():\n    import opentelemetry.sdk.trace", "brand_new_module", 1),
        ("from opentelemetry import _logs", "testing", 1),
        ("import grpc", "health", 1),
        ("from .. import testing", "grpc.server", 1),
        ("from opentelemetry import trace", "asgi", 0),
        ("import grpc.aio", "grpc.aio_server", 0),
        ("from opentelemetry.sdk._logs import LoggerProvider", "logs", 0),
    ],
)
def test_checker_flags_what_it_should(source: str, module_key: str, expected: int) -> None:
    """The rule table catches synthetic breaches (also in unknown modules) and allows the rest."""
    assert len(violations(source, module_key)) == expected


def test_checker_flags_importing_the_top_level_package() -> None:
    """``import unified_obs`` and ``from . import setup`` in the package are breaches;
    ``from . import logs`` (a submodule) is not."""
    assert _top_level_package_imports("import unified_obs", "health", False)
    assert _top_level_package_imports("from . import setup", "health", False)
    assert _top_level_package_imports("from unified_obs import get_logger", "asgi", False)
    assert not _top_level_package_imports("from . import logs", "_setup", False)
    assert not _top_level_package_imports("from .. import context", "grpc.server", False)
