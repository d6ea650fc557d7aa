"""Where a missing key should be set: secrets never in the committed `.dlt/config.toml`, one key as one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dlt
import pytest

from pipelines import hubspot
from utils.destinations import make_pipeline
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
