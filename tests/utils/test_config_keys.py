"""Where a missing key should be set (secrets never in the committed config.toml), and placeholders refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dlt
import pytest

from pipelines import hubspot, products
from sandbox.postgres import CatalogueMutator, PostgresServer
from tests.sources.hubspot.portal import portal
from utils.destinations import check_destination, make_pipeline
from utils.errors import ConfigurationError
from utils.run_engine import run_pipeline


@dlt.source(name="keys_probe")
def keys_probe(api_token: str = dlt.secrets.value, endpoint: str = dlt.config.value) -> Iterator[object]:
    """A source with one secret and one plain setting, set nowhere."""

    @dlt.resource(write_disposition="append")
    def items() -> Iterator[dict[str, str]]:
        yield {"endpoint": endpoint, "token_length": str(len(api_token))}

    yield items


@dlt.source(name="keys_probe")
def plain_probe(endpoint: str = dlt.config.value) -> Iterator[object]:
    """A source whose one setting is not a secret."""

    @dlt.resource(write_disposition="append")
    def items() -> Iterator[dict[str, str]]:
        yield {"endpoint": endpoint}

    yield items


def test_a_missing_secret_goes_to_secrets_toml_and_a_missing_setting_to_config_toml(warehouse: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        run_pipeline(make_pipeline("keys_probe", "keys_probe"), keys_probe)

    assert str(caught.value) == (
        "Pipeline 'keys_probe' is missing sources.keys_probe.api_token and sources.keys_probe.endpoint. "
        "Put sources.keys_probe.api_token in .dlt/secrets.toml (see .dlt/secrets.toml.example) and "
        "sources.keys_probe.endpoint in .dlt/config.toml, or set the environment variables "
        "SOURCES__KEYS_PROBE__API_TOKEN and SOURCES__KEYS_PROBE__ENDPOINT."
    )


def test_one_missing_setting_that_is_no_secret_may_go_in_config_toml(warehouse: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        run_pipeline(make_pipeline("keys_probe", "keys_probe"), plain_probe)

    assert str(caught.value) == (
        "Pipeline 'keys_probe' is missing sources.keys_probe.endpoint. Put it in .dlt/config.toml, or "
        "set the environment variable SOURCES__KEYS_PROBE__ENDPOINT."
    )


def test_a_missing_token_is_it_and_never_config_toml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCES__HUBSPOT__ACCESS_TOKEN", raising=False)
    monkeypatch.setenv("SOURCES__HUBSPOT__BASE_URL", "http://127.0.0.1:9")

    with pytest.raises(ConfigurationError) as caught:
        hubspot.run()

    assert str(caught.value) == (
        "Pipeline 'hubspot' is missing sources.hubspot.access_token. Put it in .dlt/secrets.toml (see "
        ".dlt/secrets.toml.example), or set the environment variable SOURCES__HUBSPOT__ACCESS_TOKEN."
    )


# -- values still the example's placeholders: refused by key before anything connects ----------------


def test_a_placeholder_token_is_refused_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    with portal(monkeypatch, contacts=5) as server:
        monkeypatch.setenv("SOURCES__HUBSPOT__ACCESS_TOKEN", "<private app token, pat-...>")

        with pytest.raises(ConfigurationError) as caught:
            hubspot.run()

        assert server.request_count() == 0
    assert str(caught.value) == (
        "Pipeline 'hubspot': sources.hubspot.access_token is still the example's <...> placeholder (from "
        ".dlt/secrets.toml.example, set in Environment Variables): replace it with the real value (or "
        "delete the line, if the setting is optional), or set the environment variable "
        "SOURCES__HUBSPOT__ACCESS_TOKEN. `./dev check-config` lists every setting."
    )


def test_a_placeholder_host_is_named_as_one_not_as_a_url_that_does_not_parse(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = postgres_server.source_env("products")["SOURCES__PRODUCTS__CREDENTIALS__PASSWORD"]
    monkeypatch.setenv("SOURCES__PRODUCTS__CREDENTIALS__HOST", "<host>")

    with pytest.raises(ConfigurationError) as caught:
        products.run()

    message = str(caught.value)
    assert message.startswith(
        "Pipeline 'products': sources.products.credentials.host is still the example's <...> placeholder"
    ), message
    assert "does not parse" not in message and "URL-encoded" not in message
    assert password not in message


def test_placeholder_snowflake_credentials_are_named_before_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DLT__DESTINATION", "snowflake")
    monkeypatch.setenv("DESTINATION__SNOWFLAKE__CREDENTIALS__HOST", "<account_identifier>")
    monkeypatch.setenv("DESTINATION__SNOWFLAKE__CREDENTIALS__USERNAME", "SVC_DLT")
    monkeypatch.setenv(
        "DESTINATION__SNOWFLAKE__CREDENTIALS__PRIVATE_KEY", "<PEM private key, or base64 of the whole PEM>"
    )

    with pytest.raises(ConfigurationError) as caught:
        check_destination(make_pipeline("currencies", "currencies"))

    message = str(caught.value)
    assert message.startswith(
        "Pipeline 'currencies': destination.snowflake.credentials.host and "
        "destination.snowflake.credentials.private_key are still the example's <...> placeholders"
    ), message
    assert "replace each with the real value" in message
    assert "does not parse" not in message
