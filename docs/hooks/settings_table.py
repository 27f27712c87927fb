"""MkDocs hook: the configuration reference, generated from ``unified_obs.config``.

A page containing the marker ``<!-- settings-table -->`` gets, in its place, one row per
``Settings`` field: its environment variable, its ``setup()`` argument, its default and
what code and environment accept, all read from the same table ``setup()`` validates
with, so the reference cannot drift from the code.
"""

from __future__ import annotations

import dataclasses
from typing import Any

MARKER = "<!-- settings-table -->"


def _default(field: dataclasses.Field[Any]) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, tuple):
        return "`" + ",".join(str(v) for v in value) + "`" if value else "empty"
    if isinstance(value, dict):
        return "`{}`" if not value else f"`{value}`"
    return f"`{value!r}`"


def settings_table() -> str:
    """The reference table, one row per ``Settings`` field, in declaration order."""
    from unified_obs import config

    specs = config._SPECS  # noqa: SLF001 -- the table setup() validates with
    rows = [
        "| environment variable | `setup()` argument | default | accepted in code |"
        " accepted in the environment |",
        "|---|---|---|---|---|",
    ]
    for field in dataclasses.fields(config.Settings):
        spec = specs.get(field.name)
        if spec is None:
            continue
        env = f"`{spec.env}`" if spec.env else "none"
        kind = spec.kind
        secret = " (secret: masked everywhere)" if spec.secret else ""
        rows.append(
            f"| {env} | `{field.name}` | {_default(field)} | {kind.accepted}{secret} |"
            f" {kind.accepted_in_environment} |"
        )
    return "\n".join(rows)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Replace the marker with the generated table."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, settings_table())
