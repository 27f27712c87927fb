"""``python -m unified_obs``: the ``unified-obs`` command."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
