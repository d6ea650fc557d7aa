"""Destination credentials given as one URL: an unencoded password is refused by key, never shown."""

from __future__ import annotations

import secrets
import string

import pytest

from utils.destinations import check_destination, make_pipeline
from utils.errors import ConfigurationError

METACHARACTERS = ["@", ":", "/", "#", "%", "?", "&", "=", '"', "'", "\\", " "]


def token() -> str:
    return "".join(secrets.choice(string.ascii_letters) for _ in range(10))


@pytest.mark.parametrize("metacharacter", METACHARACTERS)
def test_a_snowflake_url_with_an_unencoded_password_is_refused_without_any_of_it(
    metacharacter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = [token(), token(), token()]
    password = f"{parts[0]}@{parts[1]}{metacharacter}{parts[2]}"
    monkeypatch.setenv("DLT__DESTINATION", "snowflake")
    monkeypatch.setenv("VAULT__ENABLED", "false")
    monkeypatch.setenv(
        "DESTINATION__SNOWFLAKE__CREDENTIALS",
        f"snowflake://loader:{password}@xy12345.eu-west-1/RAW?warehouse=LOADING&role=LOADER",
    )
    pipeline = make_pipeline("currencies", "currencies")
    with pytest.raises(ConfigurationError) as caught:
        check_destination(pipeline)
    message = str(caught.value)
    assert "destination.snowflake.credentials" in message
    assert "URL-encoded" in message
    assert [
        p for p in parts if p in message + repr(caught.value.__cause__) + repr(caught.value.__context__)
    ] == []


def test_a_snowflake_url_with_an_encoded_password_passes_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLT__DESTINATION", "snowflake")
    monkeypatch.setenv("VAULT__ENABLED", "false")
    monkeypatch.setenv(
        "DESTINATION__SNOWFLAKE__CREDENTIALS",
        "snowflake://loader:p%40ss%23w%2Fd@xy12345.eu-west-1/RAW?warehouse=LOADING&role=LOADER",  # pragma: allowlist secret
    )
    pipeline = make_pipeline("currencies", "currencies")
    check_destination(pipeline)
    assert pipeline.destination_client().config.credentials.password == "p@ss#w/d"  # type: ignore[attr-defined]
