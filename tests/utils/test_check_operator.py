"""Issue 12.3: `./dev check-config` and runs tell an operator what to fix - never crash, never guess.

Each test below failed on the code before the fix (see the issue): a traceback for a malformed
`.dlt/secrets.toml` or partial Snowflake credentials, `nosuch` without the valid names, AWS keys
MISSING where a worker's IAM role supplies them, `cannot reach PostgreSQL at None:None/None as None`,
a DuckDB run asking AWS for `.../destination/duckdb`, a `hubspot.duckdb` file failing every load,
and production destinations with `DLT__ENVIRONMENT` unset.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pipelines.currencies as currencies_pipeline
import pipelines.hubspot as hubspot_pipeline
import pipelines.products as products_pipeline
from sandbox.frankfurter import FrankfurterServer
from tests.utils.conftest import Vault
from utils.check import check_pipeline, main, pipeline_names
from utils.environments import selected_environment
from utils.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]
SECRET_VALUE = "s3cr3t-value-never-shown"  # pragma: allowlist secret - a test fixture


def test_a_malformed_secrets_toml_is_reported_by_file_and_line_never_a_traceback(tmp_path: Path) -> None:
    (tmp_path / ".dlt").mkdir()
    shutil.copy(ROOT / ".dlt" / "config.toml", tmp_path / ".dlt" / "config.toml")
    (tmp_path / ".dlt" / "secrets.toml").write_text(
        f'[sources.hubspot]\nsomething = "fine"\naccess_token = "{SECRET_VALUE}\n[destination]\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DLT__", "SOURCES__", "DESTINATION__"))}
    env.update(PYTHONPATH=str(ROOT), DLT__DESTINATION="duckdb")
    result = subprocess.run(
        [sys.executable, "-m", "utils.check", "currencies"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert ".dlt/secrets.toml is not valid TOML: line 3, column" in result.stderr
    assert SECRET_VALUE not in result.stdout + result.stderr


def test_partial_snowflake_credentials_are_reported_naming_the_keys(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DLT__DESTINATION")
    monkeypatch.setenv("DESTINATION__SNOWFLAKE__CREDENTIALS__HOST", "xy12345.eu-west-1")
    monkeypatch.setenv("DESTINATION__SNOWFLAKE__CREDENTIALS__DATABASE", "RAW")
    monkeypatch.setenv("DESTINATION__SNOWFLAKE__CREDENTIALS__USERNAME", "SVC_DLT")  # no key, no password
    assert main(["currencies"]) == 1
    out = capsys.readouterr().out
    # Only what is still missing: the username is set, a key or a password is not.
    assert (
        "ERROR    Pipeline 'currencies': destination.snowflake.credentials are incomplete or inconsistent: "
        "set either destination.snowflake.credentials.private_key (key-pair authentication, as SVC_DLT "
        "uses) or destination.snowflake.credentials.password."
    ) in out


def test_an_unknown_pipeline_lists_the_valid_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nosuch"]) == 1
    err = capsys.readouterr().err
    assert f"no such pipeline: nosuch. The pipelines are: {', '.join(pipeline_names())}." in err


def test_aws_keys_left_to_the_workers_role_are_not_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DLT__DESTINATION")  # exchange_rates -> the S3 landing bucket
    for name in list(os.environ):
        if name.startswith(("AWS_", "DESTINATION__FILESYSTEM__CREDENTIALS__")):
            monkeypatch.delenv(name)
    # boto3's chain finds nothing on this machine (no profile, no instance metadata).
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert main(["exchange_rates"]) == 0
    out = capsys.readouterr().out
    assert "MISSING" not in out
    assert "  role     destination.filesystem.credentials.aws_access_key_id" in out
    assert "the worker's IAM role" in out
    assert "1 pipeline(s) checked, 1 ready." in out


def test_partial_products_credentials_name_the_missing_keys_in_the_check_and_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(os.environ):
        if name.startswith("SOURCES__PRODUCTS__CREDENTIALS"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SOURCES__PRODUCTS__CREDENTIALS__HOST", "127.0.0.1")
    monkeypatch.setenv("SOURCES__PRODUCTS__CREDENTIALS__USERNAME", "reader")
    expected = {"sources.products.credentials.database", "sources.products.credentials.password"}
    check = check_pipeline("products")
    assert set(check.missing) == expected
    with pytest.raises(ConfigurationError) as raised:
        products_pipeline.run()
    message = str(raised.value)
    assert all(key in message for key in expected), message
    assert "None" not in message


def test_a_duckdb_run_with_the_vault_on_asks_it_only_for_its_sources(
    vault: Vault, frankfurter: FrankfurterServer
) -> None:
    # AWS refuses the secret nobody creates: a run that still asked for it would fail naming it.
    vault.proxy.fail(vault.name("destination/duckdb"), "AccessDeniedException")
    currencies_pipeline.run()
    assert vault.proxy.calls() == {vault.name("sources/currencies"): 1}


def test_a_duckdb_file_named_like_a_dataset_is_refused_up_front(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LOCAL__DUCKDB_PATH", str(tmp_path / "hubspot.duckdb"))
    expected = "the DuckDB file 'hubspot.duckdb' is named like its dataset 'hubspot'"
    with pytest.raises(ConfigurationError, match=expected):
        hubspot_pipeline.run()
    assert any(expected in error for error in check_pipeline("hubspot").errors)
    assert check_pipeline("currencies").ready  # another pipeline's dataset: no clash


def test_without_dlt_environment_nothing_loads_into_production(monkeypatch: pytest.MonkeyPatch) -> None:
    # Production credentials lying around, no DLT__DESTINATION, no DLT__ENVIRONMENT.
    monkeypatch.delenv("DLT__DESTINATION")
    monkeypatch.delenv("DLT__ENVIRONMENT", raising=False)
    monkeypatch.delenv("VAULT__ENABLED", raising=False)
    monkeypatch.setenv("DESTINATION__SNOWFLAKE__CREDENTIALS__HOST", "xy12345.eu-west-1")
    monkeypatch.setenv("DESTINATION__SNOWFLAKE__CREDENTIALS__USERNAME", "SVC_DLT")
    monkeypatch.setenv("DESTINATION__SNOWFLAKE__CREDENTIALS__PASSWORD", "made-up")
    assert selected_environment().name == "local"
    assert currencies_pipeline.pipeline().destination.destination_type.endswith("duckdb")
    # Where the environment says production, the pipeline's own destination holds (the seed's pattern).
    monkeypatch.setenv("DLT__ENVIRONMENT", "production")
    monkeypatch.setenv("VAULT__ENABLED", "false")
    assert currencies_pipeline.pipeline().destination.destination_type.endswith("snowflake")
