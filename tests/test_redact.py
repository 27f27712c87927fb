"""Redactor: one policy for log fields, headers and query strings."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unified_obs.redact import QUERY_LIMIT, REDACTED, Redactor, scrub_json, scrub_urls


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "Password",
        "db_passwd",
        "pwd",
        "Authorization",
        "proxy-authorization",
        "X-Api-Key",
        "api_key",
        "apikey",
        "client_secret",
        "access_token",
        "refresh-token",
        "Cookie",
        "set-cookie",
        "session_id",
        "x-csrf-token",
        "jwt",
        "private_key",
        "aws_access_key_id",
        "credit_card",
        "cvv",
        "ssn",
        "sig",
        "signature",
        "credentials",
    ],
)
def test_sensitive_keys(key: str) -> None:
    """Keys that commonly carry secrets are sensitive, whatever their case or separator."""
    assert Redactor().is_sensitive(key)


@pytest.mark.parametrize(
    "key",
    ["user", "author", ":authority", "path", "status", "method", "order_id", "count", "event"],
)
def test_ordinary_keys_are_not_sensitive(key: str) -> None:
    """Ordinary field names are left alone."""
    assert not Redactor().is_sensitive(key)


def test_extra_keys_extend_the_policy() -> None:
    """Configured extra names are sensitive too (normalised like the built-in ones)."""
    redactor = Redactor(["pin", "Account-Number"])
    assert redactor.is_sensitive("PIN")
    assert redactor.is_sensitive("account_number")
    assert not Redactor().is_sensitive("pin")


def test_fields_redacts_in_place_including_nested_dicts() -> None:
    """Sensitive values are replaced at every nesting level; other values are untouched."""
    fields: dict[Any, Any] = {
        "user": "ann",
        "password": "hunter2",
        "request": {"headers": {"authorization": "Bearer abc", "accept": "*/*"}, "size": 3},
        7: "non-str key",
    }
    result = Redactor().fields(fields)
    assert result is fields
    assert fields["password"] == REDACTED
    assert fields["request"]["headers"] == {"authorization": REDACTED, "accept": "*/*"}
    assert fields["request"]["size"] == 3
    assert fields["user"] == "ann"
    assert fields[7] == "non-str key"


def test_fields_terminates_on_a_self_referencing_dict() -> None:
    """A dict that contains itself is redacted without unbounded recursion."""
    fields: dict[str, Any] = {"token": "t"}
    fields["self"] = fields
    Redactor().fields(fields)
    assert fields["token"] == REDACTED


def test_mapping_returns_a_redacted_copy() -> None:
    """``mapping`` leaves the original alone."""
    headers = {"Cookie": "a=b", "Accept": "text/html"}
    assert Redactor().mapping(headers) == {"Cookie": REDACTED, "Accept": "text/html"}
    assert headers["Cookie"] == "a=b"


def test_query_redacts_sensitive_parameters() -> None:
    """Query values of sensitive parameters are replaced; the rest and blanks are kept."""
    redacted = Redactor().query("user=ann&access_token=abc123&password=p&empty=")
    assert "abc123" not in redacted
    assert "user=ann" in redacted
    assert "empty=" in redacted
    assert redacted.count("%5BREDACTED%5D") == 2
    assert Redactor().query("") == ""


def test_query_redaction_replaces_only_the_values() -> None:
    """Only a sensitive parameter's value changes: the rest of the query keeps its
    encoding and its bare flags (``%20`` is not re-encoded as ``+``, ``flag`` does not
    become ``flag=``), so ``url.query`` is the query as sent, redacted."""
    query = "q=a%20b&flag&access_token=abc123&next=%2Fhome+page&password"
    assert Redactor().query(query) == (
        "q=a%20b&flag&access_token=%5BREDACTED%5D&next=%2Fhome+page&password"
    )


def test_decision_cache_is_bounded() -> None:
    """Many distinct keys do not grow the decision cache without limit."""
    redactor = Redactor()
    for i in range(10_000):
        redactor.is_sensitive(f"field_{i}")
    assert len(redactor._cache) <= 4096
    assert redactor.is_sensitive("field_9999_token")


def test_fields_redacts_keys_decided_after_the_cache_is_full() -> None:
    """Once the decision cache is full, new keys are still decided per line: a sensitive
    one is redacted and a safe one kept, every time it comes."""
    redactor = Redactor()
    for i in range(10_000):
        redactor.is_sensitive(f"field_{i}")
    for _ in range(2):
        line = redactor.fields({"new_password": "p", "new_field": "v", "field_1": "w"})
        assert line == {"new_password": REDACTED, "new_field": "v", "field_1": "w"}


def test_fields_redacts_dicts_inside_lists_and_tuples_without_touching_the_caller() -> None:
    """Dicts inside lists and tuples (at any depth) are redacted too; the caller's own
    containers are left as they were (redacted copies replace them in the fields)."""
    items: list[Any] = [
        {"sku": 1, "password": "hunter2"},
        ({"api_key": "k", "n": [{"token": "t"}]},),
    ]
    fields: dict[str, Any] = {"items": items, "plain": [1, 2]}
    Redactor().fields(fields)
    assert fields["items"] == [
        {"sku": 1, "password": REDACTED},
        ({"api_key": REDACTED, "n": [{"token": REDACTED}]},),
    ]
    assert items[0]["password"] == "hunter2"
    assert fields["plain"] == [1, 2]


def test_nested_returns_the_same_object_when_nothing_is_sensitive() -> None:
    """Nothing to redact: no copy is made."""
    value = [{"a": 1}, ({"b": [2]},)]
    assert Redactor().nested(value) is value


def test_fields_terminates_on_a_self_referencing_list() -> None:
    """A list that contains itself is redacted without unbounded recursion."""
    looped: list[Any] = [{"secret": "s"}]
    looped.append(looped)
    fields: dict[str, Any] = {"loop": looped}
    Redactor().fields(fields)
    assert fields["loop"][0] == {"secret": REDACTED}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("to postgres://app:pw@db:5432/x failed", "to postgres://[REDACTED]@db:5432/x failed"),
        ("https://user@host/p", "https://[REDACTED]@host/p"),
        ("redis://:p@ss@cache", "redis://[REDACTED]@cache"),
        ("a http://h/x?e=a@b.c b", "a http://h/x?e=a@b.c b"),
        ("no url here, mail a@b.c", "no url here, mail a@b.c"),
        (
            "two: amqp://u:1@q and mysql://v:2@m",
            "two: amqp://[REDACTED]@q and mysql://[REDACTED]@m",
        ),
    ],
)
def test_scrub_urls_redacts_userinfo(text: str, expected: str) -> None:
    """The user-info of any URL-shaped part of a text is redacted; the rest stays."""
    assert scrub_urls(text) == expected
    assert Redactor().text(text) == expected


def test_query_parses_only_up_to_its_limit() -> None:
    """A huge query string is cut before it is parsed: the answer covers the first
    ``query_limit`` characters only, and a secret beyond the limit is gone too."""
    huge = "q=" + "x" * 900_000 + "&token=abc"
    redacted = Redactor().query(huge)
    assert len(redacted) <= QUERY_LIMIT
    assert "abc" not in redacted
    assert len(Redactor(query_limit=10).query("a=1&b=22222222&c=3")) <= 10


def test_configure_sets_the_process_policy() -> None:
    """configure() replaces the process's policy: extra keys and the query limit."""
    from unified_obs import redact

    redact.configure(["pin"], query_limit=100)
    assert redact.policy().is_sensitive("PIN")
    assert redact.policy().query_limit == 100
    redact.configure()
    assert not redact.policy().is_sensitive("pin")


def test_scrub_json_keeps_the_line_valid_and_the_user_info_out() -> None:
    """In a rendered JSON line the user-info of every URL is replaced, escaped quotes and
    backslashes inside it included, an '@' in a later field is never reached, and the
    line stays valid JSON with every other value as it was."""
    fields = {
        "dsn": 'postgres://app:p"w\\d@db:5432/x',
        "next": "mail ann@example.com",
        "site": "https://example.com/a@b",
        "two": "amqp://a:1@q and redis://:2@c",
    }
    line = orjson.dumps(fields)
    scrubbed = scrub_json(line)
    assert json.loads(scrubbed) == {
        "dsn": "postgres://[REDACTED]@db:5432/x",
        "next": "mail ann@example.com",
        "site": "https://example.com/a@b",
        "two": "amqp://[REDACTED]@q and redis://[REDACTED]@c",
    }
    plain = orjson.dumps({"a": "no url here"})
    assert scrub_json(plain) is plain


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    fields=st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=4),
    password=st.text(min_size=1, max_size=12).filter(lambda p: not set(p) & set(" /?#@")),
)
def test_scrub_json_property(fields: dict[str, str], password: str) -> None:
    """Any line with a URL whose password is any text: still valid JSON, no password."""
    canary = "CANARY" + password
    fields = {**fields, "url": f"https://user:{canary}@host/p"}
    scrubbed = json.loads(scrub_json(orjson.dumps(fields)))
    assert canary not in json.dumps(scrubbed, ensure_ascii=False)
    assert scrubbed["url"] == "https://[REDACTED]@host/p"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Max retries exceeded with url: /v1/logs?token=c4n4ry (Caused by ...)",
            "Max retries exceeded with url: /v1/logs?token=%5BREDACTED%5D (Caused by ...)",
        ),
        (
            "GET https://api/x?page=2&api_key=s3cr3t&q=a#top",
            "GET https://api/x?page=2&api_key=%5BREDACTED%5D&q=a#top",
        ),
        ("see /search?q=token&page=1", "see /search?q=token&page=1"),
        ("is it? yes=no", "is it? yes=no"),
    ],
)
def test_scrub_urls_redacts_sensitive_query_values(text: str, expected: str) -> None:
    """A sensitive query parameter's value inside text (a URL, or a path as urllib3 logs
    it) is redacted; other parameters, and a sensitive word as a value, stay."""
    assert scrub_urls(text) == expected


def test_scrub_json_redacts_sensitive_query_values_and_stays_valid() -> None:
    """In a rendered JSON line a sensitive query value is replaced, escapes included, and
    the line stays valid JSON."""
    line = orjson.dumps({"event": 'retrying url: /v1/traces?x=1&password=p"w\\d&y=2', "n": 1})
    scrubbed = scrub_json(line)
    assert json.loads(scrubbed) == {
        "event": "retrying url: /v1/traces?x=1&password=%5BREDACTED%5D&y=2",
        "n": 1,
    }


def test_an_exporter_warning_with_a_query_token_never_reaches_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The SDK's exporters log the failing URL's path and query (urllib3's "Max retries
    exceeded with url: /v1/logs?token=..."): the token never reaches the log line."""
    import logging

    import unified_obs as obs
    from unified_obs import testing

    testing.reset()
    tel = obs.setup(service_name="redact", environ={}, handle_signals=False, log_format="json")
    try:
        logging.getLogger("opentelemetry.exporter.otlp.proto.http._log_exporter").warning(
            "Transient error Max retries exceeded with url: /v1/logs?token=c4n4ry-s3cr3t "
            "encountered while exporting logs batch"
        )
        tel.force_flush()
    finally:
        tel.shutdown()
        testing.reset()
    out = capsys.readouterr().out
    assert "Max retries exceeded" in out
    assert "c4n4ry" not in out
