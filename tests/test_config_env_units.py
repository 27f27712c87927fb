"""A bad environment value's warning names the variable and the unit it is read in."""

from __future__ import annotations

import pytest

from unified_obs.config import Settings
from unified_obs.errors import ConfigError


@pytest.mark.parametrize(
    ("variable", "accepted"),
    [
        ("OTEL_BSP_SCHEDULE_DELAY", "a number of milliseconds from 1 to 3600000"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "a number of milliseconds from 1 to 600000"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "a number of milliseconds from 1 to 600000"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "a number of milliseconds from 1 to 600000"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "a number of milliseconds from 100 to 86400000"),
    ],
)
def test_millisecond_variable_warns_in_milliseconds(variable: str, accepted: str) -> None:
    """A millisecond variable with a bad value warns with the variable's name and its
    range in milliseconds (the unit the variable is written in), never "seconds"."""
    with pytest.warns(RuntimeWarning) as record:
        Settings.from_env({variable: "soon"})
    message = str(record[0].message)
    assert f"{variable}='soon'" in message
    assert message.endswith(f"expected {accepted}")
    assert "seconds" not in message.replace("milliseconds", "")


def test_second_variable_still_warns_in_seconds() -> None:
    """A variable read in seconds keeps its message in seconds."""
    with pytest.warns(RuntimeWarning) as record:
        Settings.from_env({"UNIFIED_OBS_DRAIN_DELAY": "later"})
    assert str(record[0].message).endswith("expected a number of seconds from 0 to 600")


def test_millisecond_argument_in_code_is_still_checked_in_seconds() -> None:
    """The same setting given in code is in seconds, and its error says so."""
    with pytest.raises(ConfigError, match=r"a number of seconds from 0\.001 to 3600"):
        Settings.from_env({}, bsp_schedule_delay=-1)
