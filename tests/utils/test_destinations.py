"""Destination credentials given as one URL: an unencoded password is refused by key, never shown."""

from __future__ import annotations

import secrets
import string
from pathlib import Path

import pytest

from utils.destinations import check_destination, make_pipeline
from utils.errors import ConfigurationError
from utils.run_engine import is_permanent

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


# -- a DuckDB file that cannot be opened: a setting to change, refused before anything is extracted --


def test_a_duckdb_file_in_a_missing_folder_is_refused_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "nonexistent" / "dir" / "x.duckdb"
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(target))
    pipeline = make_pipeline("currencies", "currencies")

    with pytest.raises(ConfigurationError) as caught:
        check_destination(pipeline)

    message = str(caught.value)
    assert "destination.duckdb.credentials" in message and "DESTINATION__DUCKDB__CREDENTIALS" in message
    assert str(target) in message and "does not exist" in message
    assert is_permanent(caught.value)
    assert not target.parent.exists()  # nothing created


def test_a_local_duckdb_path_that_is_not_a_duckdb_file_is_refused_naming_it(
    warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse.write_text("not a database\n")  # LOCAL__DUCKDB_PATH points here (tests/conftest.py)
    pipeline = make_pipeline("currencies", "currencies")

    with pytest.raises(ConfigurationError) as caught:
        check_destination(pipeline)

    message = str(caught.value)
    assert "local.duckdb_path" in message and "LOCAL__DUCKDB_PATH" in message
    assert str(warehouse) in message and "not a DuckDB database file" in message


def test_a_duckdb_file_not_there_yet_in_an_existing_folder_passes_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(tmp_path / "new.duckdb"))
    check_destination(make_pipeline("currencies", "currencies"))
    assert not (tmp_path / "new.duckdb").exists()


def test_each_check_resolves_the_destination_settings_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A check pins what it resolved, so the run's later clients take it as it is (issue 14); the
    # next check of the same pipeline still sees a setting changed in between.
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(tmp_path / "first.duckdb"))
    pipeline = make_pipeline("currencies", "currencies")
    first = check_destination(pipeline)
    monkeypatch.setenv("DESTINATION__DUCKDB__CREATE_INDEXES", "true")

    second = check_destination(pipeline)

    assert first.create_indexes is False
    assert second.create_indexes is True
    assert pipeline.destination_client().config.create_indexes is True  # what the run's clients use


# -- missing Snowflake credentials: one message naming every key to set -----------------------------

SNOWFLAKE = "destination.snowflake.credentials"


def snowflake_missing(monkeypatch: pytest.MonkeyPatch, **given: str) -> str:
    """The message of a Snowflake check with only `given` credentials set (no vault, no secrets file)."""
    monkeypatch.setenv("DLT__DESTINATION", "snowflake")
    monkeypatch.setenv("VAULT__ENABLED", "false")
    for name, value in given.items():
        monkeypatch.setenv(f"DESTINATION__SNOWFLAKE__CREDENTIALS__{name.upper()}", value)
    with pytest.raises(ConfigurationError) as caught:
        check_destination(make_pipeline("currencies", "currencies"))
    assert is_permanent(caught.value)
    return str(caught.value)


def test_missing_snowflake_credentials_are_listed_in_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    # dlt asks for `username` and `password`/`private_key` only once `host` and `database` resolve:
    # a user fixed the first list only to be given a second.
    message = snowflake_missing(monkeypatch)

    # The environment (`production`, tests/conftest.py) gives the database.
    for key in ("host", "username"):
        assert f"{SNOWFLAKE}.{key}" in message, message
        assert f"DESTINATION__SNOWFLAKE__CREDENTIALS__{key.upper()}" in message
    assert f"either {SNOWFLAKE}.private_key (key-pair authentication" in message, message
    assert f"or {SNOWFLAKE}.password" in message, message


def test_a_set_login_key_is_not_asked_for_again(monkeypatch: pytest.MonkeyPatch) -> None:
    password = token()
    message = snowflake_missing(monkeypatch, username="SVC_DLT", password=password)

    assert message.startswith(
        f"Pipeline 'currencies' cannot load into snowflake: missing {SNOWFLAKE}.host. Put it in "
        ".dlt/secrets.toml (see .dlt/secrets.toml.example), set the environment variable "
        "DESTINATION__SNOWFLAKE__CREDENTIALS__HOST, or "
    ), message
    assert "username" not in message and "private_key" not in message
    assert password not in message


def test_setting_the_keys_the_message_lists_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    message = snowflake_missing(monkeypatch)
    for name in ("host", "username", "password"):
        assert f"DESTINATION__SNOWFLAKE__CREDENTIALS__{name.upper()}" in message
        monkeypatch.setenv(f"DESTINATION__SNOWFLAKE__CREDENTIALS__{name.upper()}", f"xy12345-{token()}")

    check_destination(make_pipeline("currencies", "currencies"))  # no second round of missing keys


@pytest.mark.parametrize(
    ("given", "needed"),
    [
        (
            {"username": "SVC_DLT"},
            f"either {SNOWFLAKE}.private_key (key-pair authentication, as SVC_DLT uses) or ",
        ),
        ({"password": ""}, f"{SNOWFLAKE}.username. "),  # "": made up in the test
        ({}, f"{SNOWFLAKE}.username and either {SNOWFLAKE}.private_key"),
    ],
)
def test_once_host_is_set_only_the_login_keys_not_set_are_asked_for(
    given: dict[str, str], needed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = token()
    given = {name: value or password for name, value in given.items()}
    message = snowflake_missing(monkeypatch, host="xy12345.eu-west-1", **given)

    assert f"incomplete or inconsistent: set {needed}" in message, message
    assert password not in message
