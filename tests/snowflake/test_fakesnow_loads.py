"""currencies (replace) and products (merge, twice) loading into "Snowflake": fakesnow behind a thin shim.

The pipelines run unchanged - their own `run()`, the production Snowflake destination with the
project's settings (insert-from-staging, transactions on), key-pair credentials for SVC_DLT - and
`tests/snowflake/fakesnow_shim.py` bridges the four places where dlt 1.31 and fakesnow 0.12.1 do
not meet (its docstring lists exactly what it changes). Two kinds of checks:

* data: the rows land with the right values, under upper-case identifiers, in RAW;
* SQL: every statement dlt sent parses in sqlglot's Snowflake dialect; the replace swap and each
  merge run inside one transaction (autocommit off ... COMMIT; Snowflake's TRUNCATE is DML and
  transactional, https://docs.snowflake.com/en/sql-reference/transactions); the merge deletes and
  re-inserts on the primary key `ID` and drops soft-deleted rows.

Not covered here (fakesnow is DuckDB underneath): Snowflake's own type coercions in COPY (JSONL
goes through Parquet in the shim), its implicit commit of DDL, the real PUT upload to an internal
stage, the VARIANT representation of JSON columns, privileges, and concurrency between sessions.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlglot
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlglot import exp
from sqlglot.errors import ErrorLevel

import pipelines.currencies as currencies_pipeline
import pipelines.products as products_pipeline
from sandbox.frankfurter import FrankfurterServer
from sandbox.postgres import CatalogueMutator, PostgresServer
from tests.pipelines.products_helpers import source_rows
from tests.snowflake.fakesnow_shim import SnowflakeEmulator

pytestmark = pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result")

CREDENTIALS = "DESTINATION__SNOWFLAKE__CREDENTIALS__"


@pytest.fixture(scope="module")
def svc_dlt_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def snowflake(svc_dlt_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch) -> Iterator[SnowflakeEmulator]:
    """The production destination (no DLT__DESTINATION) as SVC_DLT with a key pair, on fakesnow."""
    pem = svc_dlt_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    monkeypatch.delenv("DLT__DESTINATION")
    monkeypatch.setenv(f"{CREDENTIALS}HOST", "xy12345.eu-west-1")
    monkeypatch.setenv(f"{CREDENTIALS}DATABASE", "RAW")
    monkeypatch.setenv(f"{CREDENTIALS}USERNAME", "SVC_DLT")
    monkeypatch.setenv(f"{CREDENTIALS}WAREHOUSE", "LOADING")
    monkeypatch.setenv(f"{CREDENTIALS}ROLE", "LOADER")
    monkeypatch.setenv(f"{CREDENTIALS}PRIVATE_KEY", base64.b64encode(pem).decode())  # as a CI variable
    with SnowflakeEmulator().running() as emulator:
        yield emulator


def parse(statement: str) -> exp.Expr:
    # dlt binds values with the connector's pyformat `%s`; sqlglot reads `?` as a placeholder.
    return sqlglot.parse_one(statement.replace("%s", "?"), read="snowflake", error_level=ErrorLevel.RAISE)


def qualified(table: exp.Expr) -> str:
    """`schema.table` of a sqlglot table node, without quotes or alias."""
    assert isinstance(table, exp.Table), table
    return f"{table.db}.{table.name}"


def data_statements(emulator: SnowflakeEmulator) -> list[str]:
    """What dlt wrote, without its introspection queries."""
    return [s for s in emulator.statements() if not s.upper().startswith(("SELECT", "SHOW", "DESCRIBE"))]


def test_currencies_replace_lands_in_upper_case_and_swaps_in_one_transaction(
    snowflake: SnowflakeEmulator, frankfurter: FrankfurterServer
) -> None:
    currencies_pipeline.run()
    frankfurter.currencies.pop("USD")
    frankfurter.currencies["EUR"] = "Euro (renamed)"
    currencies_pipeline.run()

    rows = dict(snowflake.query('SELECT "CODE", "NAME" FROM RAW.CURRENCIES.CURRENCIES'))
    assert rows == frankfurter.currencies  # replaced: USD gone, EUR renamed, nothing twice
    tables = snowflake.query(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = 'RAW'"
    )
    assert ("CURRENCIES", "CURRENCIES") in tables
    assert ("CURRENCIES", "_DLT_LOADS") in tables
    assert all(schema.isupper() and name.isupper() for schema, name in tables)
    columns = [
        c
        for (c,) in snowflake.query(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'CURRENCIES' "
            "AND table_schema = 'CURRENCIES' ORDER BY ordinal_position"
        )
    ]
    assert columns == ["CODE", "NAME", "_DLT_LOAD_ID", "_DLT_ID"]
    assert snowflake.query('SELECT count(*) FROM RAW.CURRENCIES."_DLT_LOADS" WHERE "STATUS" = 0') == [(2,)]

    # The swap: one transaction per run, emptying and refilling the table from staging.
    target, staging = "CURRENCIES.CURRENCIES", "CURRENCIES_STAGING.CURRENCIES"
    truncate = 'TRUNCATE TABLE "CURRENCIES"."CURRENCIES"'
    swaps = [t for t in snowflake.transactions() if truncate in t]
    assert len(swaps) == 2
    for swap in swaps:
        assert swap[0] == truncate
        insert = parse(swap[1])
        assert isinstance(insert, exp.Insert)
        assert qualified(insert.this.this) == target
        assert qualified(insert.find(exp.Select).args["from_"].this) == staging
    assert_parse_as_snowflake(data_statements(snowflake))


def test_products_merge_twice_matches_postgres_and_merges_on_id(
    snowflake: SnowflakeEmulator, catalogue: CatalogueMutator, postgres_server: PostgresServer
) -> None:
    products_pipeline.run()
    assert_products_equal(snowflake, source_rows(postgres_server.dsn))

    catalogue.insert_products(15)
    catalogue.update_products(40)
    deleted = catalogue.soft_delete_products(8)
    snowflake.sent.clear()
    products_pipeline.run()
    expected = source_rows(postgres_server.dsn)
    assert_products_equal(snowflake, expected)
    assert not set(deleted) & set(expected)

    merges = [
        t
        for t in snowflake.transactions()
        if any(s.startswith('DELETE FROM "PRODUCTS"."PRODUCTS"') for s in t)
    ]
    assert len(merges) == 1  # the second run's merge of PRODUCTS, in one transaction
    delete, insert = (parse(s) for s in merges[0])
    assert isinstance(delete, exp.Delete)
    assert qualified(delete.this) == "PRODUCTS.PRODUCTS"
    key_condition = delete.find(exp.Exists).find(exp.EQ)
    assert {key_condition.left.sql("snowflake"), key_condition.right.sql("snowflake")} == {'d."ID"', 's."ID"'}
    assert isinstance(insert, exp.Insert)
    assert qualified(insert.this.this) == "PRODUCTS.PRODUCTS"
    window = insert.find(exp.Window)
    assert [p.sql("snowflake") for p in window.args["partition_by"]] == ['"ID"']  # dedup on the key
    assert 'AND ("DELETED_AT" IS NULL)' in insert.sql("snowflake")  # soft deletes become deletes
    assert_parse_as_snowflake(data_statements(snowflake))


def test_what_the_connector_receives_is_the_key_pair_of_svc_dlt(
    snowflake: SnowflakeEmulator, frankfurter: FrankfurterServer, svc_dlt_key: rsa.RSAPrivateKey
) -> None:
    currencies_pipeline.run()
    expected_der = svc_dlt_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert snowflake.connect_calls
    for call in snowflake.connect_calls:
        assert call["private_key"] == expected_der
        assert (call["user"], call["account"], call["database"]) == ("SVC_DLT", "xy12345.eu-west-1", "RAW")
        assert (call["role"], call["warehouse"]) == ("LOADER", "LOADING")
        assert call["password"] is None
        assert "private_key_passphrase" not in call


def assert_parse_as_snowflake(statements: list[str]) -> None:
    """Each statement parses into a real sqlglot expression (not the catch-all `Command`)."""
    assert statements
    kinds = {type(parse(statement)).__name__ for statement in statements}
    assert "Command" not in kinds
    assert {"Put", "Copy", "Insert"} <= kinds


def assert_products_equal(emulator: SnowflakeEmulator, expected: dict[int, dict[str, Any]]) -> None:
    rows = emulator.query('SELECT "ID", "NAME", "PRICE", "UPDATED_AT" FROM RAW.PRODUCTS.PRODUCTS')
    actual = {row[0]: row[1:] for row in rows}
    assert len(actual) == len(rows), "duplicate ids"
    assert actual.keys() == expected.keys()
    for key, (name, price, updated_at) in actual.items():
        want = expected[key]
        assert (name, Decimal(price), updated_at.timestamp()) == (
            want["name"],
            want["price"],
            want["updated_at"].timestamp(),
        ), key
