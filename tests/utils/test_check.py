"""utils.check (./dev check-config): what resolves, from where, what is missing - and never a value."""

from __future__ import annotations

import importlib
import secrets
import tomllib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.utils.conftest import Vault
from utils.check import main, pipeline_names
from utils.destinations import PRODUCTION_DESTINATION

ROOT = Path(__file__).resolve().parents[2]
# Made up per run, so that finding one in the output can only mean it leaked.
PASSPHRASE = secrets.token_hex(12)
SECRETS = {name: f"{name}-{secrets.token_hex(12)}" for name in ("token", "db_password", "aws_secret")}


def production_destinations() -> dict[str, str]:
    """Every pipeline (derived, so generated ones count too) and the destination it loads in production."""
    return {
        name: getattr(
            importlib.import_module(f"pipelines.{name}"), "PRODUCTION_DESTINATION", PRODUCTION_DESTINATION
        )
        for name in pipeline_names()
    }


def example_source_secrets() -> dict[str, dict[str, object]]:
    """The `sources.<name>` sections of secrets.toml.example, with a made-up value for each key."""
    example = tomllib.loads((ROOT / ".dlt" / "secrets.toml.example").read_text())
    return {
        name: {
            key: (
                {k: f"{k}-{secrets.token_hex(6)}" if isinstance(v, str) else v for k, v in value.items()}
                if isinstance(value, dict)
                else f"{key}-x"
            )
            for key, value in section.items()
        }
        for name, section in example.get("sources", {}).items()
    }


@pytest.fixture(scope="module")
def encrypted_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE.encode()),
    ).decode()


@pytest.fixture
def ci_with_every_secret_in_the_vault(
    vault: Vault, encrypted_key: str, monkeypatch: pytest.MonkeyPatch
) -> Vault:
    """DLT__ENVIRONMENT=ci (Snowflake, S3 landing bucket), every secret only in Secrets Manager."""
    monkeypatch.delenv("DLT__DESTINATION")
    monkeypatch.setenv("DLT__ENVIRONMENT", "ci")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "REGION_NAME", "ENDPOINT_URL"):
        monkeypatch.delenv(f"DESTINATION__FILESYSTEM__CREDENTIALS__{name}")  # the vault has them
    vault.put(
        "destination/snowflake",
        {
            "credentials": {
                "host": "xy12345.eu-west-1",
                "username": "SVC_DLT_CI",
                "private_key": encrypted_key,
                "private_key_passphrase": PASSPHRASE,
            }
        },
    )
    vault.put(
        "destination/filesystem",
        {
            "credentials": {
                "aws_access_key_id": "AKIACHECKCONFIG",
                "aws_secret_access_key": SECRETS["aws_secret"],
            }
        },
    )
    vault.put("sources/hubspot", {"access_token": SECRETS["token"]})
    vault.put(
        "sources/products",
        {
            "credentials": {
                "drivername": "postgresql+psycopg2",
                "host": "db",
                "database": "shop",
                "username": "reader",
                "password": SECRETS["db_password"],
            }
        },
    )
    # Pipelines added later (./dev new-pipeline) get their example secrets, made up, in the vault too.
    for name, document in example_source_secrets().items():
        if name not in {"hubspot", "products"}:
            vault.put(f"sources/{name}", document)
    return vault


def assert_no_value(text: str, encrypted_key: str) -> None:
    for value in [*SECRETS.values(), PASSPHRASE, "AKIACHECKCONFIG", "xy12345"]:
        assert value not in text
    body = [line for line in encrypted_key.splitlines() if "-----" not in line]
    assert not [line for line in body if line in text]


def test_every_key_resolves_and_says_from_where(
    ci_with_every_secret_in_the_vault: Vault, encrypted_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    vault = ci_with_every_secret_in_the_vault
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "environment: ci (DLT__ENVIRONMENT)" in out
    assert f"AWS Secrets Manager: on, secrets {vault.prefix}/sources/<name>" in out
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith("  ok ")}
    secret = f"AWS Secrets Manager secret {vault.prefix}"
    assert f"{secret}/destination/snowflake" in lines["destination.snowflake.credentials.private_key"]
    assert " secret " in lines["destination.snowflake.credentials.private_key"]
    assert f"{secret}/sources/hubspot" in lines["sources.hubspot.access_token"]
    assert f"{secret}/sources/products" in lines["sources.products.credentials.password"]
    assert (
        f"{secret}/destination/filesystem"
        in lines["destination.filesystem.credentials.aws_secret_access_key"]
    )
    assert "environment 'ci'" in lines["destination.snowflake.credentials.database"]
    assert "environment 'ci'" in lines["destination.snowflake.credentials.role"]
    assert "environment 'ci'" in lines["destination.filesystem.bucket_url"]
    assert "config.toml" in lines["sources.hubspot.base_url"]
    assert "currencies -> snowflake, dataset currencies" in out
    assert "exchange_rates -> filesystem, dataset exchange_rates" in out
    count = len(production_destinations())
    assert count >= 4
    assert f"{count} pipeline(s) checked, {count} ready." in out
    assert "MISSING" not in out
    assert_no_value(out, encrypted_key)


def test_missing_keys_are_listed_and_the_exit_status_is_one(
    ci_with_every_secret_in_the_vault: Vault, encrypted_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ci_with_every_secret_in_the_vault.delete("sources/hubspot")
    ci_with_every_secret_in_the_vault.put(
        "destination/snowflake", {"credentials": {"username": "SVC_DLT_CI"}}
    )
    assert main([]) == 1
    out = capsys.readouterr().out
    assert "  MISSING  sources.hubspot.access_token" in out
    assert "  MISSING  destination.snowflake.credentials.host" in out
    # Only the S3 pipelines (exchange_rates and any added later) need neither.
    destinations = production_destinations()
    on_s3 = [name for name, destination in destinations.items() if destination == "filesystem"]
    assert "exchange_rates" in on_s3
    assert f"{len(destinations)} pipeline(s) checked, {len(on_s3)} ready." in out
    missing = out.split("Missing:", 1)[1]
    assert "sources.hubspot.access_token  (env SOURCES__HUBSPOT__ACCESS_TOKEN; needed by hubspot)" in missing
    assert (
        "destination.snowflake.credentials.host  (env DESTINATION__SNOWFLAKE__CREDENTIALS__HOST; needed by "
        + ", ".join(sorted(name for name, d in destinations.items() if d == "snowflake"))
        + ")"
        in missing
    )
    assert_no_value(out, encrypted_key)


def test_a_wrong_passphrase_and_a_refused_secret_are_errors(
    ci_with_every_secret_in_the_vault: Vault,
    encrypted_key: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    vault = ci_with_every_secret_in_the_vault
    monkeypatch.setenv("DESTINATION__SNOWFLAKE__CREDENTIALS__PRIVATE_KEY_PASSPHRASE", "wrong-passphrase-55")
    vault.proxy.fail(vault.name("sources/products"), "AccessDeniedException")
    assert main(["currencies", "products"]) == 1
    out = capsys.readouterr().out
    assert "ERROR    destination.snowflake.credentials.private_key_passphrase does not decrypt" in out
    assert (
        f"ERROR    AWS Secrets Manager refused secret '{vault.name('sources/products')}' (AccessDeniedException"
        in out
    )
    assert "2 pipeline(s) checked, 0 ready." in out
    assert "wrong-passphrase-55" not in out
    assert_no_value(out, encrypted_key)


def test_unknown_pipeline_and_dev_task(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nope"]) == 1
    assert "no such pipeline: nope" in capsys.readouterr().err
    dev = (ROOT / "dev").read_text()
    assert '  check-config)\n    setup\n    uv run --frozen python -m utils.check "$@"' in dev
    assert "  check-config [pipeline...]" in dev  # in ./dev help


def test_a_placeholder_left_from_the_example_file_is_not_ready(
    ci_with_every_secret_in_the_vault: Vault,
    encrypted_key: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A copy of .dlt/secrets.toml.example not filled in resolves every key - to its placeholder.
    placeholder = tomllib.loads((ROOT / ".dlt" / "secrets.toml.example").read_text())["sources"]["hubspot"][
        "access_token"
    ]
    monkeypatch.setenv("SOURCES__HUBSPOT__ACCESS_TOKEN", placeholder)

    assert main(["hubspot", "currencies"]) == 1
    out = capsys.readouterr().out
    assert "  MISSING  sources.hubspot.access_token" in out
    assert "still the example's <...> placeholder" in out
    assert "2 pipeline(s) checked, 1 ready." in out
    assert "sources.hubspot.access_token  (env SOURCES__HUBSPOT__ACCESS_TOKEN; needed by hubspot)" in out
    assert placeholder not in out
    assert_no_value(out, encrypted_key)


def test_a_duckdb_file_in_a_missing_folder_is_not_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "nonexistent" / "dir" / "x.duckdb"
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(target))

    status = main(["currencies"])

    out = capsys.readouterr().out
    assert status == 1, out
    assert "destination.duckdb.credentials" in out and str(target) in out and "does not exist" in out
    assert "0 ready" in out and "Errors in: currencies" in out


def header_of(out: str) -> str:
    return out.splitlines()[0]


def test_the_default_environment_header_says_every_pipeline_loads_locally(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DLT__ENVIRONMENT")
    monkeypatch.delenv("DLT__DESTINATION")

    main(["currencies", "exchange_rates"])

    out = capsys.readouterr().out
    assert "currencies -> duckdb" in out and "exchange_rates -> duckdb" in out
    assert header_of(out).startswith(
        "environment: local (the default: DLT__ENVIRONMENT is not set, so every pipeline loads into "
        "duckdb, nothing loads into production;"
    )


@pytest.mark.parametrize(
    ("variable", "value", "cause"),
    [
        ("DLT__DESTINATION", "snowflake", "DLT__DESTINATION=snowflake"),
        ("DLT__DESTINATION", "filesystem", "DLT__DESTINATION=filesystem"),
        ("ENVIRONMENTS__LOCAL__DESTINATION", "snowflake", "environments.local.destination=snowflake"),
    ],
)
def test_the_default_environment_header_names_a_destination_chosen_over_duckdb(
    variable: str, value: str, cause: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DLT__ENVIRONMENT")
    monkeypatch.delenv("DLT__DESTINATION")
    monkeypatch.setenv(variable, value)

    main(["currencies"])

    out = capsys.readouterr().out
    assert f"currencies -> {value}" in out
    header = header_of(out)
    assert "nothing loads into production" not in header
    assert header.startswith(
        f"environment: local (the default: DLT__ENVIRONMENT is not set), but {cause} sends pipelines "
        f"to {value} (as listed below), not the local DuckDB file"
    )


def test_another_environment_header_says_when_dlt_destination_overrides_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DLT__ENVIRONMENT", "ci")
    monkeypatch.setenv("VAULT__ENABLED", "false")

    main(["currencies"])  # DLT__DESTINATION=duckdb from the test set-up

    out = capsys.readouterr().out
    assert "currencies -> duckdb" in out
    assert header_of(out) == (
        "environment: ci (DLT__ENVIRONMENT); DLT__DESTINATION=duckdb overrides every pipeline's destination"
    )
