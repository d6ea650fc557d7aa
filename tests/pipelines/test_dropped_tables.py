"""A table dropped by hand in the warehouse is recreated and refilled by the next run, for every pipeline kind.

dlt remembers the tables it created and the cursors say their rows are loaded, so before the run
engine checked, every later run failed with "Table ... does not exist! Did you mean
...products_staging.products?" (issue 15.4) and an incremental table could never be complete again.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipelines import currencies, exchange_rates, hubspot, products
from sandbox.frankfurter import FrankfurterServer
from sandbox.postgres import CatalogueMutator, PostgresServer
from tests.pipelines.products_helpers import assert_destination_equals_source
from tests.snowflake.snowpipe_emulator import RATES_START, expected_history
from tests.sources.hubspot.portal import assert_destination_equals_portal, portal


def drop(warehouse: Path, table: str) -> None:
    with duckdb.connect(str(warehouse)) as con:
        con.execute(f"drop table {table}")


def test_replace_currencies(frankfurter: FrankfurterServer, warehouse: Path) -> None:
    currencies.run()
    drop(warehouse, "currencies.currencies")

    report = currencies.run()

    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("select code, name from currencies.currencies order by code").fetchall()
    assert rows == sorted(frankfurter.currencies.items())
    assert report.rows_in_table == {"currencies": len(frankfurter.currencies)}
    assert any("currencies.currencies" in note or "table(s) currencies" in note for note in report.notes)


def test_append_incremental_exchange_rates(rates_api: FrankfurterServer, warehouse: Path) -> None:
    exchange_rates.run()
    drop(warehouse, "exchange_rates.exchange_rates")

    exchange_rates.run()  # the cursor alone would ask only for days after the last one: none

    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            "select date, base, quote, rate from exchange_rates.exchange_rates order by all"
        ).fetchall()
    assert rows == expected_history(rates_api, RATES_START)


def test_merge_incremental_products_one_of_two_tables(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, warehouse: Path
) -> None:
    products.run()
    drop(warehouse, "products.products")
    catalogue.update_products(20)  # and life goes on upstream

    report = products.run()

    assert_destination_equals_source(postgres_server.dsn, warehouse, "products")
    assert_destination_equals_source(postgres_server.dsn, warehouse, "categories")
    assert "products" in report.rows_in_table
    assert any("products" in note for note in report.notes)


def test_merge_incremental_hubspot(monkeypatch: pytest.MonkeyPatch, warehouse: Path) -> None:
    with portal(monkeypatch, contacts=300) as server:
        hubspot.run()
        drop(warehouse, "hubspot.contacts")
        server.modify_contacts(10)

        hubspot.run()

        assert_destination_equals_portal(warehouse, server)
