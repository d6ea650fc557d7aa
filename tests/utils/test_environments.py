"""utils.environments through make_pipeline: local, ci and production, and what still wins over them."""

from __future__ import annotations

import pytest

import pipelines.currencies as currencies_pipeline
import pipelines.exchange_rates as exchange_rates_pipeline
from utils.environments import ENVIRONMENTS, apply_environment, load_environment, selected_environment
from utils.errors import ConfigurationError

CREDENTIALS = "DESTINATION__SNOWFLAKE__CREDENTIALS__"


@pytest.fixture
def snowflake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Production credentials as a secret store would give them, and no DLT__DESTINATION."""
    monkeypatch.delenv("DLT__DESTINATION")
    monkeypatch.setenv("VAULT__ENABLED", "false")  # these tests are about the environment alone
    monkeypatch.setenv(f"{CREDENTIALS}HOST", "xy12345.eu-west-1")
    monkeypatch.setenv(f"{CREDENTIALS}USERNAME", "SVC_DLT")
    monkeypatch.setenv(f"{CREDENTIALS}PASSWORD", "made-up")
    monkeypatch.setenv(f"{CREDENTIALS}DATABASE", "RAW")
    monkeypatch.setenv(f"{CREDENTIALS}ROLE", "LOADER")
    monkeypatch.setenv("DESTINATION__FILESYSTEM__CREDENTIALS__AWS_ACCESS_KEY_ID", "made-up")
    monkeypatch.setenv("DESTINATION__FILESYSTEM__CREDENTIALS__AWS_SECRET_ACCESS_KEY", "made-up")


def test_without_an_environment_everything_stays_local(
    snowflake_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Production credentials are present, yet nothing says production: DuckDB, never Snowflake.
    monkeypatch.delenv("DLT__ENVIRONMENT", raising=False)
    assert selected_environment().name == "local"
    assert currencies_pipeline.pipeline().destination.destination_type.endswith("duckdb")
    assert exchange_rates_pipeline.pipeline().destination.destination_type.endswith("duckdb")
    # Naming the destination itself is deliberate too: it still wins, unpinned.
    monkeypatch.setenv("DLT__DESTINATION", "snowflake")
    pipeline = currencies_pipeline.pipeline()
    credentials = pipeline.destination_client().config.credentials
    assert pipeline.dataset_name == "currencies"
    assert (credentials.database, credentials.role) == ("RAW", "LOADER")


def test_local_loads_everything_into_duckdb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DLT__DESTINATION")
    monkeypatch.setenv("DLT__ENVIRONMENT", "local")
    assert currencies_pipeline.pipeline().destination.destination_type.endswith("duckdb")
    assert exchange_rates_pipeline.pipeline().destination.destination_type.endswith("duckdb")


def test_ci_pins_its_database_role_and_bucket_over_the_credentials(
    snowflake_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DLT__ENVIRONMENT", "ci")
    credentials = currencies_pipeline.pipeline().destination_client().config.credentials
    # The secrets say RAW / LOADER; CI must never load there.
    assert (credentials.database, credentials.role, credentials.warehouse) == (
        "RAW_CI",
        "LOADER_CI",
        "LOADING",
    )
    assert (credentials.host, credentials.username) == ("xy12345.eu-west-1", "SVC_DLT")
    landing = exchange_rates_pipeline.pipeline()
    assert landing.destination.destination_type.endswith("filesystem")
    assert landing.destination_client().config.bucket_url == "s3://exchange-rates-landing-ci"


def test_production_uses_the_production_database_and_role(
    snowflake_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DLT__ENVIRONMENT", "production")
    monkeypatch.setenv(f"{CREDENTIALS}DATABASE", "SOMETHING_ELSE")
    credentials = currencies_pipeline.pipeline().destination_client().config.credentials
    assert (credentials.database, credentials.role) == ("RAW", "LOADER")
    landing = exchange_rates_pipeline.pipeline()
    assert landing.destination_client().config.bucket_url == "s3://exchange-rates-landing"


def test_dlt_destination_still_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLT__ENVIRONMENT", "production")
    monkeypatch.setenv("VAULT__ENABLED", "false")
    assert currencies_pipeline.pipeline().destination.destination_type.endswith("duckdb")


def test_dataset_prefix_and_suffix_wrap_every_dataset(
    snowflake_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DLT__ENVIRONMENT", "ci")
    monkeypatch.setenv("ENVIRONMENTS__CI__DATASET_SUFFIX", "_pr42")
    assert currencies_pipeline.pipeline().dataset_name == "currencies_pr42"
    monkeypatch.setenv("ENVIRONMENTS__CI__DATASET_PREFIX", "tmp_")
    assert apply_environment("duckdb", "products") == ("tmp_products_pr42", {})


def test_every_environment_is_defined_in_config_toml() -> None:
    environments = {name: load_environment(name) for name in ENVIRONMENTS}
    assert environments["local"].destination == "duckdb"
    assert not environments["local"].vault_enabled
    assert environments["ci"].database != environments["production"].database
    assert environments["ci"].role != environments["production"].role
    assert environments["ci"].vault_prefix != environments["production"].vault_prefix
    assert all(environments[name].vault_enabled for name in ("ci", "production"))


def test_an_environment_naming_an_unknown_destination_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLT__ENVIRONMENT", "local")
    monkeypatch.setenv("ENVIRONMENTS__LOCAL__DESTINATION", "bigquery")
    with pytest.raises(ConfigurationError, match=r"environments\.local\.destination='bigquery'"):
        selected_environment()
