"""The ``unified-obs`` command as installed: a console script and ``python -m unified_obs``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def _script() -> str:
    """The console script installed next to this interpreter."""
    found = shutil.which("unified-obs", path=str(Path(sys.executable).parent))
    assert found is not None, "the unified-obs console script is not installed"
    return found


def test_console_script_and_module_print_usage_and_fail_without_a_command() -> None:
    """Both entry points run the same parser; with no subcommand they print usage and
    exit 2 (a usage error), not 0."""
    for command in ([_script()], [sys.executable, "-m", "unified_obs"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2
        assert "usage: unified-obs" in done.stderr


def test_help_exits_zero() -> None:
    """``--help`` prints the usage on stdout and exits 0."""
    done = subprocess.run([_script(), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "usage: unified-obs" in done.stdout
