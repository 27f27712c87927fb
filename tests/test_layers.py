"""One direction of imports over the whole of ``src/unified_obs``, checked by walking it with ast.

Every module sits in a layer, and imports point down the layers only (``a <- b``: ``b`` may
import ``a``, never the reverse)::

    _compat (other libraries' private names; it imports only errors of ours)
      <- leaves (errors, context, redact, limits, _lockfree, _semconv)
      <- config
      <- exporters and resource (_otlp, resource)
      <- signals (logs, tracing, metrics; none imports another)
      <- lifecycle
      <- health
      <- endpoints
      <- _http
      <- resilience (circuit breaker, fault injection)
      <- adapters (asgi, wsgi, django, grpc, decorators, admin, processors, ...)
      <- _setup
      <- testing, cli
      <- entry points (pytest_plugin, __main__, the top-level __init__)

Modules of one group (``metrics`` and ``metrics._series``, ``grpc.server`` and
``grpc._common``) may import each other, as long as that makes no cycle.  Every import counts:
at the top of a module, inside a function (a lazy import) and under ``if TYPE_CHECKING:``.
``importlib.import_module`` on our own modules is refused outright: it would hide an edge
from this check.

The layers and the narrower rules (who may import the OpenTelemetry SDK, grpc, ``testing``)
are data at the top of this file.  Every module is checked, including ones added later: a
module the layer table does not name fails until it is given a layer.
"""

from __future__ import annotations

import ast
import functools
import gc
import shutil
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Set
from dataclasses import dataclass
from pathlib import Path

import pytest

_PACKAGE = "unified_obs"
_SRC = Path(__file__).resolve().parents[1] / "src" / _PACKAGE

# Keys are module paths relative to the package: "" is the top-level __init__, "metrics" is
# metrics/__init__.py, "metrics._series" is metrics/_series.py.  A package key covers its
# submodules; "" covers only itself.

ADAPTERS = ("asgi", "wsgi", "django", "grpc", "decorators", "admin", "debug", "processors")
LAYERS: tuple[tuple[str, ...], ...] = (
    ("_compat",),  # other libraries' private names, below every module that needs them
    ("errors", "context", "redact", "limits", "_lockfree", "_semconv"),
    ("config",),
    ("_otlp", "resource"),
    ("logs", "tracing", "metrics"),
    ("lifecycle",),
    ("health",),
    ("endpoints",),
    ("_http",),
    ("resilience",),  # the adapters inject its faults
    (*ADAPTERS, "outbound", "slo"),
    ("_setup",),
    ("testing", "cli"),
    ("pytest_plugin", "__main__", ""),
)
RANK: dict[str, int] = {key: rank for rank, keys in enumerate(LAYERS) for key in keys}

# The one sideways edge inside a layer: _compat wraps other libraries' private names and may
# import nothing of ours but errors.
SIDEWAYS: dict[str, frozenset[str]] = {"_compat": frozenset({"errors"})}

# _setup wires every layer together, so only the entry points above it import it.
SETUP_IMPORTERS = frozenset({"", "testing", "cli"})

# Calls that import a module named by a string (besides aliases a module gives them).
DYNAMIC_IMPORTS = frozenset({"importlib.import_module", "import_module", "__import__"})


def _covers(entry: str, key: str) -> bool:
    """Whether the table entry ``entry`` names module ``key``: itself or, for a package, a
    submodule.  ``""`` (the top-level ``__init__``) names only itself."""
    return key == entry or (entry != "" and key.startswith(entry + "."))


@dataclass(frozen=True)
class Rule:
    """Importing anything under ``guarded`` (absolute dotted names) is allowed only in the
    modules ``allowed`` covers."""

    name: str
    guarded: tuple[str, ...]
    allowed: frozenset[str]

    def applies_to(self, imported: str) -> bool:
        """Whether ``imported`` (an absolute dotted module name) falls under this rule."""
        return any(_covers(g, imported) for g in self.guarded)

    def permits(self, module: str) -> bool:
        """Whether ``module`` (a key) may make the import."""
        return any(_covers(a, module) for a in self.allowed)


RULES = (
    Rule(
        "only tracing/metrics/logs/resource/_setup/testing/_compat import the OpenTelemetry SDK",
        ("opentelemetry.sdk",),
        frozenset({"tracing", "metrics", "logs", "resource", "_setup", "testing", "_compat"}),
    ),
    Rule(
        "only logs and _compat import the underscored OpenTelemetry logs modules",
        ("opentelemetry._logs", "opentelemetry.sdk._logs"),
        frozenset({"logs", "_compat"}),
    ),
    Rule("only grpc/ and _compat import grpc", ("grpc",), frozenset({"grpc", "_compat"})),
    Rule(
        "nothing but tests imports unified_obs.testing",
        (f"{_PACKAGE}.testing",),
        frozenset({"testing", "pytest_plugin"}),
    ),
)


# --- reading the package ---------------------------------------------------------------------


@dataclass(frozen=True)
class Module:
    """One source file: its key, its text and whether it is a package ``__init__``."""

    key: str
    source: str
    is_package: bool = False


@dataclass(frozen=True)
class Import:
    """One imported name: absolute and dotted, with the line and how the import runs."""

    name: str
    line: int
    where: str  # "", " (inside a function)" or " (under TYPE_CHECKING)"


def _module_key(path: Path, root: Path) -> str:
    """``grpc/server.py`` -> ``grpc.server``; ``grpc/__init__.py`` -> ``grpc``;
    ``__init__.py`` -> ``""``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources(root: Path = _SRC) -> list[Path]:
    return sorted(root.rglob("*.py"))


def _read(path: Path, root: Path = _SRC) -> Module:
    return Module(_module_key(path, root), path.read_text(), path.name == "__init__.py")


def load(root: Path = _SRC) -> list[Module]:
    """Every module under ``root`` (a copy of the package directory, or the package itself)."""
    return [_read(path, root) for path in _sources(root)]


@functools.cache
def _real_keys() -> frozenset[str]:
    return frozenset(module.key for module in load())


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


# --- collecting imports ----------------------------------------------------------------------


def _is_type_checking(test: ast.expr) -> bool:
    """``TYPE_CHECKING`` or ``typing.TYPE_CHECKING``."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(nodes: Iterable[ast.AST], where: str = "") -> Iterator[tuple[ast.AST, str]]:
    """Every node under ``nodes``, with where it runs (see ``Import.where``)."""
    for node in nodes:
        yield node, where
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _walk(node.body, " (under TYPE_CHECKING)")
            yield from _walk(node.orelse, where)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _walk(ast.iter_child_nodes(node), " (inside a function)")
        else:
            yield from _walk(ast.iter_child_nodes(node), where)


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    """The absolute module a (possibly relative) ``from ... import`` names."""
    if node.level == 0:
        return node.module or ""
    base = [_PACKAGE, *filter(None, module.key.split("."))]
    if not module.is_package:
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def our_key(name: str) -> str | None:
    """``unified_obs.metrics._series`` -> ``metrics._series``; ``unified_obs`` -> ``""``;
    another library's module -> None."""
    if name == _PACKAGE:
        return ""
    if name.startswith(_PACKAGE + "."):
        return name[len(_PACKAGE) + 1 :]
    return None


def _from_targets(base: str, names: list[str], known: Set[str]) -> list[str]:
    """What ``from base import names`` imports.  In our package ``base.name`` when that is one
    of our modules, else ``base``; in other libraries both, since either may be a module."""
    dotted = [f"{base}.{name}" for name in names]
    if our_key(base) is None:
        return [base, *dotted]
    return [name if our_key(name) in known else base for name in dotted]


def imports_of(module: Module, known: Set[str], tree: ast.Module | None = None) -> list[Import]:
    """Every module ``module`` imports, anywhere in it, once per statement."""
    found: dict[tuple[str, int], Import] = {}
    for node, where in _walk((tree or _parse(module.source)).body):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, node)
            names = _from_targets(base, [alias.name for alias in node.names], known)
        else:
            continue
        for name in names:
            found.setdefault((name, node.lineno), Import(name, node.lineno, where))
    return list(found.values())


def _ours(module: Module, imports: list[Import]) -> list[Import]:
    """The imports of our own modules (but not of ``module`` itself): the graph's edges."""
    return [i for i in imports if our_key(i.name) not in (None, module.key)]


def edges_of(module: Module, known: Set[str]) -> list[Import]:
    """The edges from ``module``; ``known`` holds the keys of the package's modules."""
    return _ours(module, imports_of(module, known))


def import_graph(modules: Iterable[Module]) -> dict[str, set[str]]:
    """Module key -> the keys of the modules it imports."""
    modules = list(modules)
    known = frozenset(module.key for module in modules)
    return {
        module.key: {key for e in edges_of(module, known) if (key := our_key(e.name)) in known}
        for module in modules
    }


# --- the checks ------------------------------------------------------------------------------


def _show(key: str) -> str:
    return key or _PACKAGE


def rank_of(key: str) -> int | None:
    """The rank of the longest table entry covering ``key``; None when no entry does."""
    entries = [entry for entry in RANK if _covers(entry, key)]
    return RANK[max(entries, key=len)] if entries else None


def _group(key: str) -> str:
    return key.split(".")[0]


def may_import(importer: str, imported: str) -> bool:
    """Whether the layers let ``importer`` import ``imported`` (both keys)."""
    if _group(importer) == _group(imported):
        return True
    if any(_covers(entry, imported) for entry in SIDEWAYS.get(_group(importer), ())):
        return True
    high, low = rank_of(importer), rank_of(imported)
    return high is not None and low is not None and low < high


def _layer_breaches(module: Module, edges: list[Import]) -> list[str]:
    """A module the table does not name, and every import against the direction."""
    high = rank_of(module.key)
    if high is None:
        return [f"{_show(module.key)}: has no layer; add it to the layer table (LAYERS)"]
    problems = []
    for edge in edges:
        imported = our_key(edge.name) or ""
        low = rank_of(imported)
        at = f"{_show(module.key)}:{edge.line} imports {_show(imported)}{edge.where}"
        if low is None:
            problems.append(f"{at}, which has no layer; add it to the layer table (LAYERS)")
        elif not may_import(module.key, imported):
            problems.append(
                f"{at}: back-edge from layer {high} ({_group(module.key)}) "
                f"to layer {low} ({_group(imported)})"
            )
    return problems


def _top_level_breaches(module: Module, edges: list[Import]) -> list[str]:
    """``import unified_obs`` or ``from unified_obs import <a name that is not a module>``."""
    return [
        f"{_show(module.key)}:{edge.line} imports the top-level package{edge.where}; "
        "import the module that defines the name"
        for edge in edges
        if edge.name == _PACKAGE
    ]


def _rule_breaches(module: Module, imports: list[Import]) -> list[str]:
    """Breaches of RULES, one per (import statement, rule)."""
    problems: dict[tuple[int, str], str] = {}
    for imported in imports:
        for rule in RULES:
            if rule.applies_to(imported.name) and not rule.permits(module.key):
                where = f"{_show(module.key)}:{imported.line} imports {imported.name}"
                problems.setdefault((imported.line, rule.name), f"{where}: {rule.name}")
    return list(problems.values())


def _dotted(node: ast.expr) -> str | None:
    """``importlib.import_module`` for that attribute chain; None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _leading_text(arg: ast.expr) -> str | None:
    """A string literal's text, or the literal start of an f-string."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values:
        return _leading_text(arg.values[0])
    return None


def _dynamic_import_spellings(tree: ast.Module) -> frozenset[str]:
    """DYNAMIC_IMPORTS plus the aliases this module gives them (``import importlib as il``)."""
    aliases = set(DYNAMIC_IMPORTS)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {
                f"{a.asname}.import_module"
                for a in node.names
                if a.name == "importlib" and a.asname
            }
        elif isinstance(node, ast.ImportFrom) and node.module == "importlib":
            aliases |= {a.asname for a in node.names if a.name == "import_module" and a.asname}
    return frozenset(aliases)


def _importlib_breaches(module: Module, tree: ast.Module) -> list[str]:
    """Calls that import one of our modules by name (``"unified_obs..."`` or relative)."""
    spellings = _dynamic_import_spellings(tree)
    problems = []
    for node, where in _walk(tree.body):
        if not (isinstance(node, ast.Call) and node.args and _dotted(node.func) in spellings):
            continue
        text = _leading_text(node.args[0])
        if text is not None and (text.startswith(_PACKAGE) or text.startswith(".")):
            problems.append(
                f"{_show(module.key)}:{node.lineno} calls {_dotted(node.func)}({text!r}){where}: "
                "no importlib for our own modules; import it"
            )
    return problems


def violations(module: Module, known: Set[str]) -> list[str]:
    """Every rule ``module`` breaks; ``known`` holds the keys of the package's modules."""
    tree = _parse(module.source)
    imports = imports_of(module, known, tree)
    edges = _ours(module, imports)
    return [
        *_layer_breaches(module, edges),
        *_top_level_breaches(module, edges),
        *_rule_breaches(module, imports),
        *_importlib_breaches(module, tree),
    ]


def check(source: str, key: str) -> list[str]:
    """``violations`` of a synthetic module placed at ``key`` in the real package (a plain
    module, but for ``""``: the top-level package)."""
    return violations(Module(key, source, is_package=key == ""), _real_keys())


# --- cycles ----------------------------------------------------------------------------------


def strongly_connected(graph: Mapping[str, Set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of ``graph`` (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            split = stack.index(node)
            components.append(frozenset(stack[split:]))
            del stack[split:]

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _cycle_in(component: frozenset[str], graph: Mapping[str, Set[str]]) -> list[str]:
    """A shortest cycle through the component's first module, e.g. ``[a, b, a]``."""
    start = min(component)
    queue = deque([[start]])
    seen = {start}
    while queue:
        path = queue.popleft()
        for successor in sorted(graph.get(path[-1], ())):
            if successor == start:
                return [*path, start]
            if successor in component and successor not in seen:
                seen.add(successor)
                queue.append([*path, successor])
    return [start]


def cycles(graph: Mapping[str, Set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module."""
    return [_cycle_in(c, graph) for c in strongly_connected(graph) if len(c) > 1]


def _describe(cycle: list[str], graph: Mapping[str, Set[str]]) -> str:
    members = next(c for c in strongly_connected(graph) if cycle[0] in c)
    return " -> ".join(map(_show, cycle)) + f" (component: {', '.join(sorted(members))})"


# --- the real package ------------------------------------------------------------------------


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(_SRC)))
def test_module_obeys_every_rule(path: Path) -> None:
    """Each module has a layer, imports only below it or within its group, imports no
    top-level package names, keeps to RULES and loads none of our modules through importlib."""
    problems = violations(_read(path), _real_keys())
    assert not problems, "\n" + "\n".join(problems)


def test_the_package_has_no_import_cycles() -> None:
    """No two modules reach each other through imports (lazy and TYPE_CHECKING ones included)."""
    graph = import_graph(load())
    found = [_describe(cycle, graph) for cycle in cycles(graph)]
    assert not found, "import cycles:\n" + "\n".join(found)


def test_only_the_entry_points_import_setup() -> None:
    """``_setup`` is imported only by the top-level package, ``testing`` and ``cli``."""
    graph = import_graph(load())
    importers = sorted(
        key
        for key, imported in graph.items()
        if "_setup" in imported and not any(_covers(entry, key) for entry in SETUP_IMPORTERS)
    )
    assert importers == []


def test_the_walk_sees_the_package() -> None:
    """The checker really walks the package and resolves its imports (guards against a wrong
    path or a broken resolver passing vacuously)."""
    graph = import_graph(load())
    assert {"", "config", "logs", "metrics._series", "_setup", "testing"} <= graph.keys()
    assert "_setup" in graph[""]
    assert "metrics._names" in graph["metrics._instruments"]


def test_adapters_are_not_allowed_the_sdk() -> None:
    """The rule table keeps every adapter (and all of grpc/) off the OpenTelemetry SDK."""
    (sdk_rule,) = [rule for rule in RULES if "opentelemetry.sdk" in rule.guarded]
    for key in (*ADAPTERS, "_http", "endpoints", "context", "grpc.server", "grpc.aio_client"):
        assert not sdk_rule.permits(key), key


# --- the checker on synthetic sources --------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "key", "expected"),
    [
        # against the layers, wherever the import sits
        ("from ..asgi import X", "metrics._series", "metrics._series:1 imports asgi: back-edge"),
        (
            "from unified_obs import _setup",
            "decorators._arguments",
            "decorators._arguments:1 imports _setup: back-edge from layer 10",
        ),
        (
            "from ..logs import get_logger",
            "metrics._series",
            "metrics._series:1 imports logs: back-edge",
        ),
        (
            "def f():\n    from .. import asgi",
            "metrics._series",
            "metrics._series:2 imports asgi (inside a function): back-edge",
        ),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..asgi import App\n",
            "_http.asgi_scopes",
            "_http.asgi_scopes:3 imports asgi (under TYPE_CHECKING): back-edge",
        ),
        ("import unified_obs.asgi", "health._warmup", "health._warmup:1 imports asgi: back-edge"),
        ("", "brand_new_module", "brand_new_module: has no layer; add it to the layer table"),
        ("from .gone import x", "resilience", "resilience:1 imports gone, which has no layer"),
        # importlib on our own modules
        (
            'import importlib\nimportlib.import_module("unified_obs.metrics")',
            "admin",
            "admin:2 calls importlib.import_module('unified_obs.metrics'): no importlib",
        ),
        (
            'from importlib import import_module\nimport_module(f"unified_obs.{name}")',
            "health._check_runner",
            "calls import_module('unified_obs.'): no importlib",
        ),
        ('__import__("unified_obs")', "asgi", "asgi:1 calls __import__('unified_obs')"),
        (
            'import importlib as il\nil.import_module(".metrics", "unified_obs")',
            "asgi",
            "asgi:2 calls il.import_module('.metrics')",
        ),
        # the top-level package and RULES
        ("import unified_obs", "health", "health:1 imports the top-level package"),
        ("from .. import setup", "health._warmup", "imports the top-level package"),
        ("from .. import testing", "grpc.server", "nothing but tests imports unified_obs.testing"),
        ("from opentelemetry.sdk.trace import TracerProvider", "asgi", "OpenTelemetry SDK"),
        ("from opentelemetry.sdk.trace import TracerProvider", "grpc.server", "OpenTelemetry SDK"),
        ("from opentelemetry import _logs", "testing", "underscored OpenTelemetry logs"),
        ("import grpc", "health", "health:1 imports grpc: only grpc/ and _compat import grpc"),
    ],
)
def test_checker_flags_what_it_should(source: str, key: str, expected: str) -> None:
    """Planted breaches are reported, with the line and how the import runs."""
    problems = check(source, key)
    assert any(expected in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("source", "key"),
    [
        ("from ..config import Settings", "logs"),
        ("from .. import errors, redact", "config._parsing"),
        ("from . import _names\nfrom ._names import check_name", "metrics._series"),
        ("from . import sibling_name", "metrics._series"),
        ("from ._common import Options\nimport grpc.aio", "grpc.server"),
        ("from .. import _setup, admin, metrics", "testing"),
        ("from ._setup import setup\nfrom .metrics import counter", ""),
        ("from . import shutdown", ""),
        ("from ..errors import ConfigError", "_compat"),
        ("from opentelemetry.sdk._logs import LoggerProvider", "logs"),
        ('import importlib\nimportlib.import_module("opentelemetry.exporter.otlp")', "_otlp"),
        ("import importlib\nimportlib.import_module(name)", "_otlp"),
        ("def f():\n    from ..logs import get_logger", "health._check_runner"),
    ],
)
def test_checker_allows_what_it_should(source: str, key: str) -> None:
    """Imports down the layers, within a group, of other libraries, and dynamic imports of
    other libraries, are no violation."""
    assert check(source, key) == []


def test_from_import_edges_go_to_the_module_only() -> None:
    """``from . import _names`` is an edge to ``metrics._names`` alone; ``from . import NAME``
    (not a module) is an edge to the package."""
    known = _real_keys()
    series = Module("metrics._series", "from . import _names, check_name")
    assert {i.name for i in edges_of(series, known)} == {
        "unified_obs.metrics._names",
        "unified_obs.metrics",
    }


def test_cycles_are_found_in_a_small_graph() -> None:
    """A cycle of three is reported (as a path), a tail leading into it and an acyclic
    remainder are not."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_a_package_and_its_submodule_cycle_only_through_names() -> None:
    """A package importing its submodule, which imports a sibling module from the package, is
    no cycle; the submodule importing a name from the package ``__init__`` is one."""
    package = Module("metrics", "from . import _series", is_package=True)
    names = Module("metrics._names", "")
    sibling = Module("metrics._series", "from . import _names")
    assert cycles(import_graph([package, names, sibling])) == []
    name_user = Module("metrics._series", "from . import counter")
    assert cycles(import_graph([package, names, name_user])) == [
        ["metrics", "metrics._series", "metrics"]
    ]


def test_a_back_edge_planted_in_a_copy_of_the_package_is_found(tmp_path: Path) -> None:
    """Planting ``from ..asgi import ...`` in a copy of the real tree adds exactly that
    violation, and the cycle it closes (asgi imports metrics)."""
    copy = tmp_path / _PACKAGE
    shutil.copytree(_SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    series = copy / "metrics" / "_series.py"
    lines = series.read_text().count("\n")
    series.write_text(series.read_text() + "from ..asgi import ObservabilityMiddleware\n")

    def found(root: Path) -> tuple[set[str], list[list[str]]]:
        modules = load(root)
        keys = frozenset(m.key for m in modules)
        graph = import_graph(modules)
        return {p for m in modules for p in violations(m, keys)}, cycles(graph)

    (before, cycles_before), (after, cycles_after) = found(_SRC), found(copy)
    assert after - before == {
        f"metrics._series:{lines + 1} imports asgi: back-edge from layer 4 (metrics) "
        "to layer 10 (asgi)"
    }
    assert any({"asgi", "metrics._series"} <= set(c) for c in cycles_after)
    assert not any({"asgi", "metrics._series"} <= set(c) for c in cycles_before)
