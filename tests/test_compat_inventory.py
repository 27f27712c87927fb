"""Every use of another library's private names lives in ``src/unified_obs/_compat/``."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.private_names import PrivateUse, private_uses


def test_no_private_name_of_another_library_outside_compat() -> None:
    """The inventory of other libraries' private names (module paths and attributes, by
    file and line) finds none outside ``_compat/``; the message lists each with its place."""
    outside = [str(use) for use in private_uses() if not use.path.startswith("_compat/")]
    assert outside == [], "move these into src/unified_obs/_compat/:\n" + "\n".join(outside)


def test_the_inventory_lists_the_uses_inside_compat() -> None:
    """The inventory does find the uses ``_compat/`` makes (so an empty list outside it is
    not a blind inventory): the SDK span's fields the lean span fills, and the
    ``prometheus_client`` children's values the bound series replace."""
    inside = {(use.path, use.name) for use in private_uses()}
    assert {
        ("_compat/opentelemetry_spans.py", "_attributes"),
        ("_compat/opentelemetry_batch.py", "_queue"),
        ("_compat/prometheus_client.py", "_buckets"),
        ("_compat/prometheus_client.py", "_value"),
    } <= inside


def test_the_inventory_finds_each_kind_of_use(tmp_path: Path) -> None:
    """A private module import, an imported private name, an attribute our package defines
    nowhere, a reflected one and a store on another object are all found; names the module
    defines itself, dunders and the documented ``namedtuple`` API are not."""
    source = tmp_path / "planted.py"
    source.write_text(
        "from opentelemetry.sdk._logs import LoggerProvider\n"
        "from asyncio import _get_running_loop\n"
        "import opentelemetry.util._once\n"
        "def f(span, point):\n"
        "    own = span._planted_private_name\n"
        "    getattr(span, '_another_planted_name')\n"
        "    span._exporter = own\n"
        "    point._replace(x=1)\n"
        "    return span.__class__\n"
        "class Mine:\n"
        "    def __init__(self):\n"
        "        self._mine = 1\n"
        "    def read(self, other):\n"
        "        return other._mine\n",
        encoding="utf-8",
    )
    ast.parse(source.read_text(encoding="utf-8"))
    names = {use.name for use in private_uses([source], root=tmp_path)}
    assert names == {
        "opentelemetry.sdk._logs",
        "asyncio._get_running_loop",
        "opentelemetry.util._once",
        "_planted_private_name",
        "_another_planted_name",
        "_exporter",
    }
    assert all(isinstance(use, PrivateUse) for use in private_uses([source], root=tmp_path))


def test_a_name_of_ours_that_a_dependency_also_uses_hides_nothing(tmp_path: Path) -> None:
    """A module whose own class keeps ``self._context`` (a name the SDK's span uses too)
    still has ``span._context`` on another object counted; so is ``self._attributes`` in
    a class that derives from the SDK's span through a class of ours, and a private
    attribute that a module of ours imported here does not have.  A name only our code
    binds, read on our own object or module, is not counted."""
    source = tmp_path / "planted.py"
    source.write_text(
        "from unified_obs import metrics\n"
        "from unified_obs._compat.opentelemetry_spans import LeanSpan\n"
        "class Holder:\n"
        "    def __init__(self, context):\n"
        "        self._context = context\n"
        "        self._only_ours_binds_this = 1\n"
        "    def read(self, span, other):\n"
        "        return span._context, other._only_ours_binds_this, self._context\n"
        "class Derived(LeanSpan):\n"
        "    def size(self):\n"
        "        return len(self._attributes)\n"
        "def table():\n"
        "    return metrics._instruments, metrics._not_in_the_module\n",
        encoding="utf-8",
    )
    found = {(use.line, use.name) for use in private_uses([source], root=tmp_path)}
    assert found == {(8, "_context"), (11, "_attributes"), (13, "_not_in_the_module")}
