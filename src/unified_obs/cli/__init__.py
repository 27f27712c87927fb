"""The ``unified-obs`` command (also ``python -m unified_obs``).

Each subcommand is a module of this package with a ``register(add_parser)`` function:
it calls ``add_parser(name, help=...)`` (argparse's ``add_subparsers().add_parser``), adds
its options and sets the default ``run`` (``argparse.Namespace -> int``, the exit status)::

    def register(add_parser: AddParser) -> None:
        parser = add_parser("doctor", help="...")
        parser.set_defaults(run=run)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

__all__ = ["AddParser", "main"]

AddParser = Callable[..., argparse.ArgumentParser]
Register = Callable[[AddParser], None]


def _registrars() -> list[Register]:
    """Every subcommand's ``register`` (imported here, so the import graph sees them)."""
    from . import dashboard, doctor, rules

    return [doctor.register, rules.register, dashboard.register]


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: one subparser per subcommand."""
    parser = argparse.ArgumentParser(
        prog="unified-obs", description="See what unified_obs does in this service, and why."
    )
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _registrars():
        register(subcommands.add_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; its exit status (2 for a usage error, as argparse does)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] | None = getattr(args, "run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return 2
    return run(args)
