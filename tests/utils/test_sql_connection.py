"""PostgreSQL credentials: every form works or is refused by key, and no part of a password is ever shown.

The passwords hold every URL and TOML metacharacter (`@ : / # % ? & = " ' \\` and a space) between
random tokens; a message "leaks" if any token appears in it.
"""

from __future__ import annotations

import logging
import os
import secrets
import string
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from dlt.common.configuration.specs import ConnectionStringCredentials

from pipelines import products as products_pipeline
from sandbox.postgres import CatalogueMutator, PostgresServer
from tests.pipelines.products_helpers import assert_destination_equals_source
from utils.errors import ConfigurationError, PermanentPipelineError, UpstreamUnreachableError
from utils.sql_connection import connection_target, describe_failure

METACHARACTERS = ["@", ":", "/", "#", "%", "?", "&", "=", '"', "'", "\\", " "]
KEY = "sources.products.credentials"


def token() -> str:
    return "".join(secrets.choice(string.ascii_letters) for _ in range(10))


def tokens_in(text: str, tokens: list[str]) -> list[str]:
    return [t for t in tokens if t in text]


@pytest.mark.parametrize("metacharacter", METACHARACTERS)
def test_an_unencoded_password_in_a_url_parses_right_or_is_refused_without_any_of_it(
    metacharacter: str,
) -> None:
    parts = [token(), token(), token()]
    password = f"{parts[0]}{metacharacter}{parts[1]}@{parts[2]}"  # `@` too: the classic case
    url = f"postgresql://loader:{password}@db.example.com:5432/shop"
    credentials = ConnectionStringCredentials(url)
    parsed_right = credentials.host == "db.example.com" and credentials.password == password
    if parsed_right:  # the parser got it right after all: then the parts shown are the real ones
        assert str(connection_target(credentials, KEY)) == "db.example.com:5432/shop as loader"
        return
    with pytest.raises(ConfigurationError) as caught:
        connection_target(credentials, KEY)
    message = str(caught.value)
    assert KEY in message
    assert "URL-encoded" in message
    assert tokens_in(message, parts) == []
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


def test_separate_keys_accept_any_password_and_describe_only_safe_parts() -> None:
    credentials = ConnectionStringCredentials()
    credentials.drivername = "postgresql"
    credentials.host, credentials.port, credentials.database = "db.example.com", 5433, "shop"
    credentials.username = "loader"
    credentials.password = "".join(METACHARACTERS) + token()
    assert str(connection_target(credentials, KEY)) == "db.example.com:5433/shop as loader"


@pytest.mark.parametrize("missing", ["host", "database", "username", "password"])
def test_incomplete_credentials_name_the_missing_keys(missing: str) -> None:
    credentials = ConnectionStringCredentials("postgresql://loader:pw@db.example.com:5432/shop")
    setattr(credentials, missing, None)
    with pytest.raises(ConfigurationError, match=rf"missing {KEY}\.{missing}"):
        connection_target(credentials, KEY)


def test_one_missing_key_is_it_and_several_are_them() -> None:
    credentials = ConnectionStringCredentials("postgresql://loader@db.example.com:5432/shop")
    with pytest.raises(ConfigurationError) as one:
        connection_target(credentials, KEY)
    credentials.host = None
    with pytest.raises(ConfigurationError) as two:
        connection_target(credentials, KEY)

    env = KEY.upper().replace(".", "__")
    assert (
        f"missing {KEY}.password. Set it in .dlt/secrets.toml, the vault or the environment variable {env}__PASSWORD,"
        in str(one.value)
    )
    assert (
        f"missing {KEY}.host and {KEY}.password. Set them in .dlt/secrets.toml, the vault or the environment "
        f"variables {env}__HOST and {env}__PASSWORD,"
    ) in str(two.value)


def test_a_port_that_is_not_a_number_is_refused_by_key() -> None:
    credentials = ConnectionStringCredentials("postgresql://loader:pw@db.example.com:5432/shop")
    credentials.port = 70000
    with pytest.raises(ConfigurationError, match=rf"`{KEY}\.port`"):
        connection_target(credentials, KEY)


def test_unknown_driver_failures_are_named_by_class_only() -> None:
    secret = token()
    reason, failure = describe_failure(RuntimeError(f"something odd about {secret}"))
    assert secret not in reason
    assert reason == "RuntimeError"
    assert failure == "transient"


# --- against the real PostgreSQL: the products pipeline with a metacharacter password -----------


@pytest.fixture
def metacharacter_password(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, list[str]]]:
    """The read-only role's password changed to one holding every metacharacter; restored after.

    Yields:
        The password and the random tokens it is made of.
    """
    original = str(postgres_server.dlt_credentials()["password"])
    parts = [token() for _ in METACHARACTERS]
    # Ends with a letter: dlt strips a trailing space from resolved credential fields (a dlt trait).
    password = "".join(p + c for p, c in zip(parts, METACHARACTERS, strict=True)) + "end"
    postgres_server.set_reader_password(password)
    for key in list(os.environ):
        if key.startswith("SOURCES__PRODUCTS__CREDENTIALS"):
            monkeypatch.delenv(key)
    try:
        yield password, parts
    finally:
        postgres_server.set_reader_password(original)


def _one_url(postgres_server: PostgresServer, password: str) -> str:
    creds = postgres_server.dlt_credentials()
    return f"postgresql://{creds['username']}:{password}@{creds['host']}:{creds['port']}/{creds['database']}"


def test_a_metacharacter_password_works_as_separate_keys_and_as_an_encoded_url(
    metacharacter_password: tuple[str, list[str]],
    postgres_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
    warehouse: Path,
) -> None:
    password, _ = metacharacter_password
    for key, value in postgres_server.dlt_credentials().items():
        monkeypatch.setenv(f"SOURCES__PRODUCTS__CREDENTIALS__{key.upper()}", str(value))
    products_pipeline.run()
    assert_destination_equals_source(postgres_server.dsn, warehouse, "products")

    for key in list(os.environ):
        if key.startswith("SOURCES__PRODUCTS__CREDENTIALS__"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SOURCES__PRODUCTS__CREDENTIALS", _one_url(postgres_server, quote(password, safe="")))
    products_pipeline.run()
    assert_destination_equals_source(postgres_server.dsn, warehouse, "products")


def test_an_unencoded_metacharacter_password_is_refused_naming_the_key_and_nothing_of_it(
    metacharacter_password: tuple[str, list[str]],
    postgres_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    password, parts = metacharacter_password
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SOURCES__PRODUCTS__CREDENTIALS", _one_url(postgres_server, password))
    with pytest.raises(PermanentPipelineError) as caught:
        products_pipeline.run()
    message = str(caught.value)
    assert KEY in message
    assert "URL-encoded" in message
    captured = capfd.readouterr()
    everything = "\n".join(
        [
            message,
            repr(caught.value.__cause__),
            repr(caught.value.__context__),
            caplog.text,
            captured.out,
            captured.err,
        ]
    )
    assert tokens_in(everything, parts) == []


def test_a_wrong_metacharacter_password_is_permanent_and_never_shown(
    metacharacter_password: tuple[str, list[str]],
    postgres_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, parts = metacharacter_password
    caplog.set_level(logging.DEBUG)
    wrong_parts = [token() for _ in METACHARACTERS]
    wrong = "".join(p + c for p, c in zip(wrong_parts, METACHARACTERS, strict=True))
    for key, value in postgres_server.dlt_credentials().items():
        monkeypatch.setenv(f"SOURCES__PRODUCTS__CREDENTIALS__{key.upper()}", str(value))
    monkeypatch.setenv("SOURCES__PRODUCTS__CREDENTIALS__PASSWORD", wrong)
    with pytest.raises(ConfigurationError) as caught:
        products_pipeline.run()
    message = str(caught.value)
    assert "the password was rejected" in message
    assert KEY in message
    assert tokens_in(message + caplog.text, parts + wrong_parts) == []


def test_a_refused_connection_is_unreachable_and_named_by_safe_parts(
    catalogue: CatalogueMutator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__PRODUCTS__CREDENTIALS__PORT", "9")
    with pytest.raises(
        UpstreamUnreachableError, match=r"127\.0\.0\.1:9/shop as \w+: the connection was refused"
    ):
        products_pipeline.run()


def test_a_host_that_does_not_resolve_is_unreachable(
    catalogue: CatalogueMutator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__PRODUCTS__CREDENTIALS__HOST", "no-such-host.invalid")
    with pytest.raises(UpstreamUnreachableError, match=r"the host name does not resolve"):
        products_pipeline.run()
