"""The access line: every request writes one event with the same field names.

:meth:`~unified_obs._http.exchange.Exchange._log` writes it through the ordinary
logger call on :data:`LOGGER`, so it goes through the live processor chain
(:class:`~unified_obs.logs.processors.Enrich` then the renderer, by default) like any
other line.
"""

from __future__ import annotations

from typing import Final

__all__ = ["EVENT", "LOGGER"]

LOGGER: Final = "unified_obs.access"
EVENT: Final = "http.request"
