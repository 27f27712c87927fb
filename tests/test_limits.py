"""The limit policy: one pair of numbers per signal, from settings and the environment."""

from __future__ import annotations

from typing import Any

import pytest

import unified_obs as obs
from unified_obs import limits, redact
from unified_obs.config import Settings
from unified_obs.limits import AttributeLimits, Limits, cut_attributes, cut_value


def test_defaults_are_finite_for_every_signal() -> None:
    """Without configuration every signal has 4096 characters per value and 128
    attributes per record, and metric label values 4096 characters."""
    assert Settings.from_env({}).limits() == Limits(
        spans=AttributeLimits(4096, 128), log_records=AttributeLimits(4096, 128)
    )
    assert Limits().label_value_length == 4096


def test_signal_limits_fall_back_to_the_general_ones() -> None:
    """OTEL_SPAN_* and OTEL_LOGRECORD_* win for their signal; otherwise the general
    OTEL_ATTRIBUTE_* values apply (the OpenTelemetry specification's rule)."""
    found = Settings.from_env(
        {
            "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "100",
            "OTEL_ATTRIBUTE_COUNT_LIMIT": "10",
            "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT": "50",
            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "7",
        }
    ).limits()
    assert found.spans == AttributeLimits(100, 7)
    assert found.log_records == AttributeLimits(50, 10)
    assert found.label_value_length == 100


@pytest.mark.parametrize("value", [0, -1, "many", 1.5, 10**9])
def test_bad_limit_in_code_raises_config_error(value: Any) -> None:
    """A limit given in code outside its range raises ConfigError naming the field."""
    with pytest.raises(obs.ConfigError, match="logrecord_attribute_count_limit"):
        Settings.from_env({}, logrecord_attribute_count_limit=value)


def test_bad_limit_in_environment_warns_and_falls_back() -> None:
    """A bad limit in the environment warns once and the general limit applies."""
    with pytest.warns(RuntimeWarning, match="OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT"):
        found = Settings.from_env({"OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT": "-3"})
    assert found.limits().log_records.count == 128


def test_setup_pushes_the_policy_and_reset_restores_it() -> None:
    """setup() makes the settings' limits the process's policy (the query string limit of
    the redaction policy included); testing.reset() restores the defaults."""
    obs.setup(
        service_name="limits",
        environ={},
        attribute_value_length_limit=300,
        logrecord_attribute_count_limit=5,
    )
    assert limits.policy().log_records == AttributeLimits(300, 5)
    assert redact.policy().query_limit == 300
    obs.testing.reset()
    assert limits.policy() == limits.DEFAULT
    assert redact.policy().query_limit == redact.QUERY_LIMIT


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abcdef", "abc"),
        (b"abcdef", b"abc"),
        (["abcdef", 1, "ab"], ["abc", 1, "ab"]),
        (("abcdef",), ("abc",)),
        (12345678, 12345678),
        ({"k": "abcdef"}, {"k": "abcdef"}),
    ],
)
def test_cut_value_cuts_strings_and_their_sequences(value: Any, expected: Any) -> None:
    """Strings, bytes and the strings of a list or tuple are cut; other values stay."""
    assert cut_value(value, 3) == expected


def test_cut_value_returns_an_unchanged_value_itself() -> None:
    """Nothing to cut: the very same object comes back (no copy on the hot path)."""
    value = ["ab", 1]
    assert cut_value(value, 3) is value


def test_cut_attributes_keeps_the_first_ones() -> None:
    """At most ``count`` attributes, the first ones, each value cut."""
    found = cut_attributes({"a": "xxxxx", "b": 2, "c": 3}, AttributeLimits(2, 2))
    assert found == {"a": "xx", "b": 2}


def _json(value: Any) -> bytes:
    import json

    return json.dumps(value).encode()


def test_a_record_within_the_limits_is_the_same_object() -> None:
    """Nothing to cut: the record itself comes back (no copy for a common line)."""
    from unified_obs.logs._record_limits import within

    record = {"event": "x", "a": "short", "b": [1, 2]}
    assert within(record, AttributeLimits(10, 5), _json) is record


def test_a_record_beyond_the_limits_is_cut_and_keeps_its_identity() -> None:
    """Fields beyond the count go (the record's own, ids and service fields stay),
    strings are cut, a nested value too long as JSON becomes its JSON text, cut."""
    from unified_obs.logs._record_limits import within

    record: dict[str, Any] = {"event": "e" * 20, "level": "info"}
    record |= {f"f{i}": "v" * 20 for i in range(5)}
    record |= {"nested": {"k": "y" * 50}, "trace_id": "t" * 32, "service.name": "svc"}
    found = within(record, AttributeLimits(10, 3), _json)
    assert list(found) == ["event", "level", "f0", "f1", "f2", "trace_id", "service.name"]
    assert found["event"] == "e" * 10
    assert found["f0"] == "v" * 10
    assert found["trace_id"] == "t" * 32  # written by the pipeline, never cut
    assert record["f0"] == "v" * 20
