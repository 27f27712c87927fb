"""``unified-obs dashboard [SPEC]``: a Grafana dashboard (JSON) for the metrics unified_obs
emits: HTTP and gRPC rate, errors and duration (with exemplars), runtime, probes and
self-metrics; an SLO spec adds a row per objective (budget remaining, burn rates).

Needs Python 3.11+ (grafana-foundation-sdk).  Import it in Grafana with a Prometheus
datasource; for exemplar links to traces, give the datasource an exemplar destination
named ``trace_id`` (see docs/slo.md).
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
    """Add the ``dashboard`` subcommand (``add_parser``: see ``cli.AddParser``; not
    imported, as ``cli`` imports this module)."""
    parser = add_parser(
        "dashboard",
        help="a Grafana dashboard for the library's metrics (and an SLO spec's objectives)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "spec", nargs="?", type=Path, help="an SLO spec file (YAML: ours, Sloth's or OpenSLO v1)"
    )
    parser.add_argument(
        "--protocol",
        action="append",
        choices=("http", "grpc"),
        help="RED rows to include (repeat for both; default: both)",
    )
    parser.add_argument("--title", default="", help="the dashboard's title")
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print (or write) the dashboard; 1 when the spec is invalid."""
    try:
        spec = slo.load(args.spec) if args.spec is not None else None
        board = slo.dashboard_json(spec, args.title, tuple(args.protocol or ("http", "grpc")))
        if args.output is None:
            sys.stdout.write(board + "\n")
        else:
            args.output.write_text(board + "\n", encoding="utf-8")
    except (ConfigError, ImportError, OSError) as exc:
        print(f"unified-obs dashboard: {exc}", file=sys.stderr)
        return 1
    return 0
