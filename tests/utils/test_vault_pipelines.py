"""Acceptance: every pipeline of the main job runs with its secrets only in (moto) AWS Secrets Manager."""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sandbox import Sandbox
from tests.utils.conftest import Vault
from utils.check import pipeline_names
from utils.errors import ConfigurationError


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(products=300, contacts=40) as running:
        yield running


def secrets_into_vault(sandbox: Sandbox, vault: Vault, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The sandbox's settings: base URLs as configuration (env), everything else as JSON secrets.

    Returns:
        Every secret value put into the vault, by its environment variable name.
    """
    documents: dict[str, dict[str, Any]] = {}
    secrets: dict[str, str] = {}
    for name, value in sandbox.env().items():
        if name.endswith("__BASE_URL"):
            # Not a secret, and .dlt/config.toml (asked before the vault) holds the production URL.
            monkeypatch.setenv(name, value)
            continue
        monkeypatch.delenv(name, raising=False)
        top, section, *path = name.lower().split("__")
        node = documents.setdefault(f"{top}/{section}", {})
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
        secrets[name] = value
    for section, document in documents.items():
        vault.put(section, document)
    # The seed's two, and any pipeline added later whose stand-in has secrets (generated saas, sql).
    assert {"sources/products", "sources/hubspot"} <= set(documents)
    assert set(documents) <= {f"sources/{name}" for name in pipeline_names()}
    return secrets


def test_every_pipeline_runs_with_its_secrets_only_in_the_vault(
    sandbox: Sandbox, vault: Vault, warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets_into_vault(sandbox, vault, monkeypatch)
    monkeypatch.setenv(
        "SOURCES__EXCHANGE_RATES__START_DATE", (dt.date.today() - dt.timedelta(days=10)).isoformat()
    )
    names = pipeline_names()
    assert {"currencies", "exchange_rates", "hubspot", "products"} <= set(names)
    for name in names:
        importlib.import_module(f"pipelines.{name}").run()

    with duckdb.connect(str(warehouse), read_only=True) as con:
        counts = {
            table: con.execute(f"select count(*) from {table}").fetchone()[0]  # type: ignore[index]
            for table in (
                "currencies.currencies",
                "exchange_rates.exchange_rates",
                "hubspot.contacts",
                "products.products",
            )
        }
    assert all(count > 0 for count in counts.values()), counts
    # One API call per secret per pipeline run: each source's secret (or miss) once, and none for
    # the local DuckDB destination, which needs no secret (issue 12.3).
    calls = vault.proxy.calls()
    assert calls == {vault.name(f"sources/{name}"): 1 for name in names}


def test_a_missing_secret_names_the_secret_path_and_the_key(
    sandbox: Sandbox, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = secrets_into_vault(sandbox, vault, monkeypatch)
    vault.delete("sources/hubspot")
    import pipelines.hubspot as hubspot_pipeline

    with pytest.raises(ConfigurationError) as raised:
        hubspot_pipeline.run()
    message = str(raised.value)
    assert "sources.hubspot.access_token" in message
    assert (
        f"add access_token to the JSON secret '{vault.prefix}/sources/hubspot' (it does not exist)" in message
    )
    assert not [value for value in secrets.values() if value in message]
