"""``SetupOptions`` (the typed ``setup()`` keywords) stays in step with ``Settings``."""

from __future__ import annotations

import dataclasses

from unified_obs.config import Settings
from unified_obs.config._options import SetupOptions


def test_setup_options_match_settings_fields() -> None:
    """Every Settings field is a typed setup() keyword and nothing else is."""
    fields = [f.name for f in dataclasses.fields(Settings)]
    assert list(SetupOptions.__annotations__) == fields
