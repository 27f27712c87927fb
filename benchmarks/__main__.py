"""Run every ``benchmarks/bench_*.py`` module (or ``--only NAME``) and print the tables."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from pathlib import Path

from benchmarks._harness import run_group


def main(argv: list[str] | None = None) -> int:
    """Entry point; exit status 1 if any budget failed and ``--strict`` was given."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--only", action="append", default=[], help="bench module name part")
    parser.add_argument("--json", type=Path, help="write results to this JSON file")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (smoke run)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a budget fails")
    args = parser.parse_args(argv)
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if args.only:
        names = [n for n in names if any(part in n for part in args.only)]
    results = []
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        for group in module.groups():
            results.append(run_group(group, rounds=5 if args.quick else 15))
    if args.json:
        args.json.write_text(json.dumps([r.as_dict() for r in results], indent=2))
    failed = [
        f"{r.title}: {case}" for r in results for case, (_, _, ok) in r.budgets.items() if not ok
    ]
    if failed:
        print("\nbudgets failed:\n  " + "\n  ".join(failed))
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
