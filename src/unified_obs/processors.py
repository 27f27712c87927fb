"""Log processors, at their public path; they are defined in :mod:`unified_obs.logs.processors`."""

from __future__ import annotations

from .logs.processors import *  # noqa: F403 - the public path re-exports that module whole
from .logs.processors import __all__ as __all__
