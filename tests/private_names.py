"""Find every use of another library's private names in ``src/unified_obs`` (by reading the
source with :mod:`ast`, nothing imported).

A use is one of:

* an import of an underscored module or name of another package
  (``from opentelemetry.sdk._logs import X``, ``from asyncio import _get_running_loop``);
* an attribute ``obj._name`` or ``getattr(obj, "_name")`` (``hasattr``/``setattr``/
  ``delattr`` alike) that the module itself does not define (for ``self._name``: that our
  package defines nowhere), so it belongs to another library's object (a store on another
  object is a use too: only ``self._name = ...`` defines a name);
* ``obj._name`` on anything but ``self``/``cls`` where a class of a dependency binds
  ``_name`` too, even when our module defines it: the source does not say whose object
  ``obj`` is, so a name of our own that a dependency also uses (``_value``, ``_context``)
  cannot hide a read of the dependency's (rename ours, or read it on ``self``);
* ``self._name`` inside a class with a base from another library -- directly or through
  classes of ours -- where ``_name`` is one of the names that base's library defines (an
  override or a read of its private state).

Dunder names and the documented underscore API of ``namedtuple``, ``os._exit``,
``sys._getframe``/``_current_frames`` and the ``_thread`` module are public and not
counted.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import sysconfig
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


def _third_party(top: str) -> list[Path]:
    """Where the installed third-party package ``top`` lives (empty for the standard
    library, our package and what is not installed)."""
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return []
    if spec is None or top == OURS:
        return []
    site = Path(sysconfig.get_paths()["purelib"])
    found = spec.submodule_search_locations or ([spec.origin] if spec.origin else [])
    places = [Path(place) for place in found if str(place).endswith(".py") or Path(place).is_dir()]
    return places if places and all(site in p.parents for p in places) else []


def _imported_tops(files: Iterable[Path]) -> set[str]:
    tops: set[str] = set()
    for path in files:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ImportFrom) and not node.level and node.module:
                tops.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                tops.update(alias.name.split(".")[0] for alias in node.names)
    return tops


@cache
def dependency_private_names() -> frozenset[str]:
    """Every private name a class of a third-party package our source imports binds (its
    methods, class attributes, slots and ``self._x`` stores), read from the installed
    source with :mod:`ast`."""
    names: set[str] = set()
    for top in sorted(_imported_tops(_files())):
        for place in _third_party(top):
            for path in sorted(place.rglob("*.py")) if place.is_dir() else [place]:
                names.update(_class_names_in(path))
    return frozenset(names)


def _class_names_in(path: Path) -> Iterator[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return
    for klass in (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)):
        yield from (name for name in _defined_in(klass) if _private(name))


@cache
def _foreign_private_names(klass: type) -> frozenset[str]:
    """The private names of every class of another library in ``klass`` 's MRO."""
    names: set[str] = set()
    for base in klass.__mro__:
        top = base.__module__.split(".")[0]
        if top not in (OURS, "builtins", "typing", "abc"):
            names.update(_class_private_names(base))
    return frozenset(names)


def _imported_names(tree: ast.Module, package: str | None = None) -> dict[str, object]:
    """The objects this module imports, by local name: from other packages, and from ours
    (relative imports resolved against ``package``), so a class of ours that derives
    from another library's class is seen through."""
    found: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = _module(_absolute(node, package))
            for alias in node.names:
                found[alias.asname or alias.name] = getattr(module, alias.name, None)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                found[alias.asname or alias.name] = _module(alias.name)
    return found


def _absolute(node: ast.ImportFrom, package: str | None) -> str:
    """The absolute module name ``node`` imports from (``""`` where it cannot be told)."""
    if not node.level:
        return node.module or ""
    if package is None:
        return ""
    base = package.split(".")
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _module(name: str) -> object:
    """The module ``name``, or ``None`` where the installed release has none (an import
    that our code makes only on releases that have it)."""
    if not name:
        return None
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


def _override_uses(tree: ast.Module, imported: dict[str, object]) -> Iterator[tuple[int, str]]:
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


@dataclass(frozen=True)
class _Scope:
    """What one module of ours binds: its names, and the objects it imports."""

    local: frozenset[str]
    imported: dict[str, object]

    def foreign(self, receiver: ast.expr, name: str) -> bool:
        """Whether ``receiver._name`` reads another library's private name: on ``self``
        when our package defines the name nowhere; on a module or class of ours imported
        here when it has no such attribute; on anything else when this module does not
        define the name or a dependency's class binds it too."""
        if not _private(name):
            return False
        if _on_self(receiver):
            return name not in self.local and name not in ours()
        owner = self.imported.get(receiver.id) if isinstance(receiver, ast.Name) else None
        if _is_ours(owner):
            return not hasattr(owner, name)
        return name not in self.local or name in dependency_private_names()


def _is_ours(thing: object) -> bool:
    """Whether ``thing`` is a module or class of our package."""
    where = getattr(thing, "__name__" if inspect.ismodule(thing) else "__module__", "")
    return (
        isinstance(where, str)
        and where.split(".")[0] == OURS
        and (inspect.ismodule(thing) or inspect.isclass(thing))
    )


def _uses_in(tree: ast.Module, package: str | None = None) -> Iterator[tuple[int, str]]:
    scope = _Scope(frozenset(_defined_in(tree)), _imported_names(tree, package))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield from ((node.lineno, name) for name in _import_uses(node))
        elif isinstance(node, ast.Attribute) and scope.foreign(node.value, node.attr):
            yield node.lineno, node.attr
        elif isinstance(node, ast.Call):
            name = _reflected_name(node)
            if name and scope.foreign(node.args[0], name):
                yield node.lineno, name
    yield from _override_uses(tree, scope.imported)


def private_uses(files: Iterable[Path] | None = None, root: Path = SRC) -> list[PrivateUse]:
    """Every use of another library's private name in our source (or in ``files``, named
    relative to ``root``), sorted by place."""
    found: set[PrivateUse] = set()
    for path in files or _files():
        relative = path.relative_to(root).as_posix()
        for line, name in _uses_in(_tree(path), _package_of(path, root)):
            found.add(PrivateUse(relative, line, name))
    return sorted(found)


def _package_of(path: Path, root: Path) -> str | None:
    """The dotted package of a source file of ours (``None`` for a file elsewhere)."""
    if root != SRC:
        return None
    return ".".join((OURS, *path.relative_to(SRC).parts[:-1]))
