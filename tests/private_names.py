"""Find every use of another library's private names in ``src/unified_obs`` (by reading the
source with :mod:`ast`, nothing imported).

A use is one of:

* an import of an underscored module or name of another package
  (``from opentelemetry.sdk._logs import X``, ``from asyncio import _get_running_loop``);
* an attribute ``obj._name`` or ``getattr(obj, "_name")`` (``hasattr``/``setattr``/
  ``delattr`` alike) that the module itself does not define (for ``self._name``: that our
  package defines nowhere), so it belongs to another library's object (a store on another
  object is a use too: only ``self._name = ...`` defines a name);
* ``self._name`` inside a class with a base from another library, where ``_name`` is one
  of the names that base's library defines (an override or a read of its private state).

Dunder names and the documented underscore API of ``namedtuple``, ``os._exit``,
``sys._getframe``/``_current_frames`` and the ``_thread`` module are public and not
counted.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "unified_obs"
OURS = "unified_obs"
PUBLIC_UNDERSCORE = frozenset(
    {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}
    | {"_exit", "_getframe", "_current_frames"}  # os and sys, documented
    | {"_thread"}  # the standard library's documented low-level threading module
)
_REFLECTION = frozenset({"getattr", "hasattr", "setattr", "delattr"})


@dataclass(frozen=True, order=True)
class PrivateUse:
    """One use of another library's private name: where, and what."""

    path: str  # relative to src/unified_obs, with "/"
    line: int
    name: str  # the dotted module path or the attribute name

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.name}"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name not in PUBLIC_UNDERSCORE


def _files() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _defined_in(tree: ast.AST) -> Iterator[str]:
    """Every name a module binds: definitions, stores, arguments, aliases, ``__slots__``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node.name
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            yield node.id
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            if _on_self(node.value):  # a store on another object is a use, not a definition
                yield node.attr
        elif isinstance(node, ast.arg):
            yield node.arg
        elif isinstance(node, ast.alias):
            yield (node.asname or node.name).split(".")[0]
        elif isinstance(node, ast.Assign) and _is_slots(node):
            yield from _slot_names(node.value)


def _is_slots(node: ast.Assign) -> bool:
    return any(isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets)


def _slot_names(value: ast.expr) -> Iterator[str]:
    for element in getattr(value, "elts", [value]):
        if isinstance(element, ast.Constant) and isinstance(element.value, str):
            yield element.value


@cache
def ours() -> frozenset[str]:
    """The names our package defines somewhere (module names included)."""
    names = {p.stem for p in SRC.rglob("*.py")} | {p.name for p in SRC.rglob("*") if p.is_dir()}
    for path in _files():
        names.update(_defined_in(_tree(path)))
    return frozenset(names)


def _import_uses(node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.ImportFrom):
        if node.level or not node.module or node.module.split(".")[0] == OURS:
            return
        if any(_private(part) for part in node.module.split(".")):
            yield node.module
        for alias in node.names:
            if _private(alias.name):
                yield f"{node.module}.{alias.name}"
        return
    for alias in node.names:
        parts = alias.name.split(".")
        if parts[0] != OURS and any(_private(part) for part in parts):
            yield alias.name


def _reflected_name(node: ast.Call) -> str | None:
    if not (isinstance(node.func, ast.Name) and node.func.id in _REFLECTION):
        return None
    if len(node.args) < 2 or not isinstance(node.args[1], ast.Constant):
        return None
    value = node.args[1].value
    return value if isinstance(value, str) else None


def _class_private_names(klass: type) -> Iterator[str]:
    """The private names ``klass`` binds in its own body (methods, class attributes and
    ``self._x`` stores), read from its source."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
    except (OSError, TypeError, SyntaxError):
        return
    yield from (name for name in _defined_in(tree) if _private(name))


@cache
def _foreign_private_names(klass: type) -> frozenset[str]:
    """The private names of every class of another library in ``klass`` 's MRO."""
    names: set[str] = set()
    for base in klass.__mro__:
        top = base.__module__.split(".")[0]
        if top not in (OURS, "builtins", "typing", "abc"):
            names.update(_class_private_names(base))
    return frozenset(names)


def _imported_names(tree: ast.Module) -> dict[str, object]:
    """The objects this module imports from other top-level packages, by local name."""
    found: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if node.module.split(".")[0] != OURS:
                module = _module(node.module)
                for alias in node.names:
                    found[alias.asname or alias.name] = getattr(module, alias.name, None)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != OURS:
                    found[alias.asname or alias.name] = _module(alias.name)
    return found


def _module(name: str) -> object:
    """The module ``name``, or ``None`` where the installed release has none (an import
    that our code makes only on releases that have it)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _resolve(base: ast.expr, imported: dict[str, object]) -> type | None:
    """The foreign class a base-class expression names, if it names one."""
    while isinstance(base, ast.Subscript):
        base = base.value
    path: list[str] = []
    while isinstance(base, ast.Attribute):
        path.insert(0, base.attr)
        base = base.value
    if not isinstance(base, ast.Name) or base.id not in imported:
        return None
    found = imported[base.id]
    for part in path:
        found = getattr(found, part, None)
    return found if isinstance(found, type) else None


def _override_uses(tree: ast.Module) -> Iterator[tuple[int, str]]:
    imported = _imported_names(tree)
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        bases = [k for b in cls.bases if (k := _resolve(b, imported)) is not None]
        foreign = set().union(*(_foreign_private_names(k) for k in bases))
        for node in ast.walk(cls):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
                and node.attr in foreign
            ):
                yield node.lineno, node.attr


def _on_self(receiver: ast.expr) -> bool:
    return isinstance(receiver, ast.Name) and receiver.id in ("self", "cls")


def _foreign(receiver: ast.expr, name: str, local: frozenset[str]) -> bool:
    """Whether ``receiver._name`` reads another library's private name: on ``self`` when
    our package defines the name nowhere, on anything else when this module does not."""
    if not _private(name):
        return False
    return name not in local and (not _on_self(receiver) or name not in ours())


def _uses_in(tree: ast.Module) -> Iterator[tuple[int, str]]:
    local = frozenset(_defined_in(tree))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield from ((node.lineno, name) for name in _import_uses(node))
        elif isinstance(node, ast.Attribute) and _foreign(node.value, node.attr, local):
            yield node.lineno, node.attr
        elif isinstance(node, ast.Call):
            name = _reflected_name(node)
            if name and _foreign(node.args[0], name, local):
                yield node.lineno, name
    yield from _override_uses(tree)


def private_uses(files: Iterable[Path] | None = None, root: Path = SRC) -> list[PrivateUse]:
    """Every use of another library's private name in our source (or in ``files``, named
    relative to ``root``), sorted by place."""
    found: set[PrivateUse] = set()
    for path in files or _files():
        relative = path.relative_to(root).as_posix()
        for line, name in _uses_in(_tree(path)):
            found.add(PrivateUse(relative, line, name))
    return sorted(found)
