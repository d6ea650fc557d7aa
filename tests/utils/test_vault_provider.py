"""utils.vault_provider against moto's Secrets Manager on loopback (errors through a fault proxy)."""

from __future__ import annotations

import json
import secrets
from typing import Any

import boto3
import dlt
import pytest
from dlt.common.configuration.container import Container
from dlt.common.configuration.exceptions import ConfigFieldMissingException, DuplicateConfigProviderException
from dlt.common.configuration.inject import get_fun_spec
from dlt.common.configuration.resolve import resolve_configuration
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext
from dlt.common.configuration.utils import get_resolved_traces

from sources.hubspot import hubspot_source
from sources.products import products_source
from tests.utils.conftest import Vault
from utils.errors import ConfigurationError, PermanentPipelineError, UpstreamUnavailableError
from utils.vault_provider import (
    PROVIDER_NAME,
    SecretAccessError,
    SecretFormatError,
    SecretsManagerProvider,
    SecretsManagerUnavailableError,
    describe_missing,
    register_vault_provider,
    registered_provider,
    vault_settings,
)

TOKEN = f"pat-vault-test-{secrets.token_hex(16)}"  # made up per run; must never appear in a message
PRODUCTS = {
    "credentials": {
        "drivername": "postgresql+psycopg2",
        "host": "db.internal",
        "port": 5432,
        "database": "shop",
        "username": "shop_reader",
        "password": secrets.token_urlsafe(16),
    }
}


def hubspot_config() -> Any:
    return resolve_configuration(get_fun_spec(hubspot_source)(), sections=("sources", "hubspot", "hubspot"))


def products_config() -> Any:
    return resolve_configuration(
        get_fun_spec(products_source)(), sections=("sources", "products", "products")
    )


def provider_names() -> list[str]:
    return [p.name for p in Container()[PluggableRunContext].providers.providers]


def test_source_secrets_resolve_from_one_json_secret_per_section(vault: Vault) -> None:
    hubspot = vault.put("sources/hubspot", {"access_token": TOKEN})
    products = vault.put("sources/products", PRODUCTS)
    register_vault_provider()
    get_resolved_traces().clear()

    assert hubspot_config().access_token == TOKEN
    credentials = products_config().credentials
    assert (credentials.host, credentials.port, credentials.password) == (
        "db.internal",
        5432,
        PRODUCTS["credentials"]["password"],
    )
    # dlt records which provider and which secret each value came from (utils.check shows it).
    origins = {t.key: (t.provider_name, t.provider_location) for t in get_resolved_traces().resolved_traces}
    assert origins["access_token"] == (PROVIDER_NAME, hubspot)
    assert origins["password"] == (PROVIDER_NAME, products)


def test_destination_credentials_come_from_the_destination_secret(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault.put(
        "destination/snowflake",
        {
            "credentials": {
                "host": "xy12345.eu-west-1",
                "username": "SVC_DLT",
                "database": "RAW",
                "password": secrets.token_urlsafe(16),
            }
        },
    )
    monkeypatch.delenv("DLT__DESTINATION")
    from utils.destinations import make_pipeline

    client = make_pipeline("vault_destination", "currencies").destination_client()
    assert (client.config.credentials.host, client.config.credentials.username) == (
        "xy12345.eu-west-1",
        "SVC_DLT",
    )


def test_each_secret_costs_one_call_per_run_hits_and_misses_alike(vault: Vault) -> None:
    name = vault.put("sources/products", PRODUCTS)
    register_vault_provider()
    for _ in range(3):
        products_config()
    with pytest.raises(ConfigFieldMissingException):
        hubspot_config()  # no such secret: one call, then remembered as missing
    with pytest.raises(ConfigFieldMissingException):
        hubspot_config()
    assert vault.proxy.calls() == {name: 1, vault.name("sources/hubspot"): 1}

    register_vault_provider()  # what make_pipeline does at the start of the next run
    products_config()
    assert vault.proxy.calls()[name] == 2


def test_lookups_outside_source_and_destination_sections_cost_no_call(vault: Vault) -> None:
    register_vault_provider()
    assert dlt.config.get("runtime.log_level", str) is not None
    assert dlt.config.get("normalize.workers", int) is None
    assert dlt.config.get("local.some_setting", str) is None
    assert vault.proxy.calls() == {}


def test_environment_variables_win_over_the_vault(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    vault.put("sources/hubspot", {"access_token": TOKEN})
    monkeypatch.setenv("SOURCES__HUBSPOT__ACCESS_TOKEN", "from-the-environment")
    register_vault_provider()
    assert hubspot_config().access_token == "from-the-environment"


def test_missing_secret_or_key_falls_through_and_the_error_names_secret_and_key(vault: Vault) -> None:
    register_vault_provider()
    with pytest.raises(ConfigFieldMissingException) as missing_secret:
        hubspot_config()
    # dlt's own message lists where it looked, the secret among them.
    assert f"{vault.prefix}/sources/hubspot:access_token" in str(missing_secret.value)
    assert describe_missing(["sources.hubspot.access_token"]) == (
        f" In AWS Secrets Manager, add access_token to the JSON secret '{vault.prefix}/sources/hubspot'"
        " (it does not exist)."
    )

    vault.put("sources/hubspot", {"token": TOKEN})  # exists, but the key is misnamed
    register_vault_provider()
    with pytest.raises(ConfigFieldMissingException):
        hubspot_config()
    assert "(it exists without them)" in describe_missing(["sources.hubspot.access_token"])
    assert TOKEN not in describe_missing(["sources.hubspot.access_token"])


@pytest.mark.parametrize(
    ("code", "error", "words"),
    [
        ("AccessDeniedException", SecretAccessError, "secretsmanager:GetSecretValue"),
        ("DecryptionFailure", SecretAccessError, "kms:Decrypt"),
        ("InvalidRequestException", SecretAccessError, "marked for deletion"),
    ],
)
def test_refusals_raise_at_once_naming_the_secret_never_its_value(
    vault: Vault, code: str, error: type[Exception], words: str
) -> None:
    name = vault.put("sources/hubspot", {"access_token": TOKEN})
    vault.proxy.fail(name, code)
    register_vault_provider()
    with pytest.raises(error) as raised:
        hubspot_config()
    message = str(raised.value)
    assert f"'{name}'" in message
    assert code in message
    assert words in message
    assert TOKEN not in message
    assert isinstance(raised.value, PermanentPipelineError)  # the flows do not retry it
    assert vault.proxy.calls() == {name: 1}  # not retried by botocore either


def test_throttling_is_retried_by_botocore_then_raised_as_transient(vault: Vault) -> None:
    name = vault.put("sources/hubspot", {"access_token": TOKEN})
    vault.proxy.fail(name, "ThrottlingException")
    register_vault_provider()
    with pytest.raises(SecretsManagerUnavailableError) as raised:
        hubspot_config()
    assert f"'{name}'" in str(raised.value)
    assert "ThrottlingException" in str(raised.value)
    assert isinstance(raised.value, UpstreamUnavailableError)  # the flows retry it later
    assert not isinstance(raised.value, PermanentPipelineError)
    assert vault.proxy.calls() == {name: 2}  # AWS_MAX_ATTEMPTS=2: botocore's standard retry


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"access_token": "' + TOKEN + '",}', "is not valid JSON (line 1, column"),
        (f"access_token = '{TOKEN}'", "is not valid JSON (line 1, column 1"),
        (json.dumps([TOKEN]), "is JSON but not an object (a list)"),
    ],
    # Fixed ids: TOKEN is made up per process, and pytest-xdist needs every worker to collect the same.
    ids=["json-with-a-trailing-comma", "toml", "json-list"],
)
def test_a_secret_that_is_not_a_json_object_names_the_secret_never_its_value(
    vault: Vault, text: str, words: str
) -> None:
    name = vault.put_raw("sources/hubspot", text)
    register_vault_provider()
    with pytest.raises(SecretFormatError) as raised:
        hubspot_config()
    assert f"'{name}'" in str(raised.value)
    assert words in str(raised.value)
    assert TOKEN not in str(raised.value)
    # Nothing chained either: a JSON decode error carries the whole document.
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None


def test_no_aws_credentials_is_a_clear_configuration_error(
    vault: Vault, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    register_vault_provider()
    with pytest.raises(SecretAccessError, match=r"boto3 found no AWS credentials"):
        hubspot_config()


def test_region_is_configurable(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    # moto keeps secrets per region, like AWS: this one exists in eu-central-1 only.
    boto3.client(
        "secretsmanager", region_name="eu-central-1", endpoint_url=vault.aws.endpoint_url
    ).create_secret(Name=vault.name("sources/hubspot"), SecretString=json.dumps({"access_token": TOKEN}))
    register_vault_provider()
    with pytest.raises(ConfigFieldMissingException):
        hubspot_config()  # the default region (AWS_REGION, eu-west-1) has no such secret

    monkeypatch.setenv("VAULT__REGION", "eu-central-1")
    provider = register_vault_provider()
    assert provider is not None
    assert provider._get_client().meta.region_name == "eu-central-1"
    assert hubspot_config().access_token == TOKEN


def test_registration_is_idempotent_and_follows_the_settings(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = register_vault_provider()
    assert isinstance(first, SecretsManagerProvider)
    assert register_vault_provider() is first
    assert provider_names().count(PROVIDER_NAME) == 1
    assert provider_names()[-1] == PROVIDER_NAME  # asked last, after env vars and TOML files
    with pytest.raises(DuplicateConfigProviderException):
        dlt.config.register_provider(SecretsManagerProvider(first.settings))  # what dlt does alone

    monkeypatch.setenv("VAULT__PREFIX", "elsewhere")
    second = register_vault_provider()
    assert second is not first
    assert second is not None
    assert second.settings.prefix == "elsewhere"
    assert provider_names().count(PROVIDER_NAME) == 1

    monkeypatch.setenv("VAULT__ENABLED", "false")
    assert register_vault_provider() is None
    assert registered_provider() is None
    assert PROVIDER_NAME not in provider_names()


def test_off_by_default_on_in_ci_and_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT__ENABLED", raising=False)
    monkeypatch.delenv("DLT__ENVIRONMENT", raising=False)
    assert vault_settings().enabled is False
    assert register_vault_provider() is None

    monkeypatch.setenv("DLT__ENVIRONMENT", "local")
    assert vault_settings().enabled is False
    monkeypatch.setenv("DLT__ENVIRONMENT", "ci")
    assert (vault_settings().enabled, vault_settings().prefix) == (True, "data-pipelines/ci")
    monkeypatch.setenv("DLT__ENVIRONMENT", "production")
    assert (vault_settings().enabled, vault_settings().prefix) == (True, "data-pipelines/production")
    monkeypatch.setenv("VAULT__ENABLED", "false")  # an explicit setting wins over the environment
    assert vault_settings().enabled is False


def test_an_unknown_environment_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLT__ENVIRONMENT", "staging")
    with pytest.raises(ConfigurationError, match=r"DLT__ENVIRONMENT='staging' is not an environment"):
        vault_settings()
