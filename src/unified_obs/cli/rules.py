"""``unified-obs rules SPEC``: Prometheus recording rules and burn-rate alerts for an SLO
spec file, and the ``promtool test rules`` file that proves them.

The spec is ours, a Sloth spec (``version: prometheus/v1``) or OpenSLO v1 documents, as
long as their SLIs query the library's own metrics.  Without ``-o`` the rules go to
stdout.  With ``-o rules.yml`` the rules are written there and their tests beside them
(``rules_test.yml``); run ``promtool test rules rules_test.yml`` in CI.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from .. import slo
from ..errors import ConfigError

__all__ = ["register", "run"]


def register(add_parser: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the ``rules`` subcommand (``add_parser``: see ``cli.AddParser``; not
    imported, as ``cli`` imports this module)."""
    parser = add_parser(
        "rules",
        help="Prometheus recording rules and multi-window burn-rate alerts for an SLO spec",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "spec", type=Path, help="the SLO spec file (YAML: ours, Sloth's or OpenSLO v1)"
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        help="write the rules here and their promtool tests beside them (<name>_test.yml)",
    )
    parser.set_defaults(run=run)


def tests_path(rules: Path) -> Path:
    """Where the tests of ``rules`` go: ``rules.yml`` -> ``rules_test.yml``."""
    return rules.with_name(f"{rules.stem}_test{rules.suffix or '.yml'}")


def run(args: argparse.Namespace) -> int:
    """Write the rules (and, with ``-o``, their tests); 1 when the spec is invalid."""
    try:
        spec = slo.load(args.spec)
        rules = slo.rules_yaml(spec)
        output: Path | None = args.output
        if output is None:
            sys.stdout.write(rules)
            return 0
        output.write_text(rules, encoding="utf-8")
        tests = tests_path(output)
        tests.write_text(slo.rule_tests_yaml(spec, output.name), encoding="utf-8")
    except (ConfigError, ImportError, OSError) as exc:
        print(f"unified-obs rules: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {output} and {tests}", file=sys.stderr)
    return 0
