"""The all-types table through dlt's real Snowflake destination (fakesnow behind the project's shim).

The DDL dlt sends for every mapped PostgreSQL type must be valid Snowflake SQL (sqlglot's Snowflake
dialect, no catch-all `Command`), use Snowflake's own types with the source's widths, and the
special-value mapping must be the same as on DuckDB: NULL in the column, the real value in
`_PG_SPECIAL_VALUES`. Before `utils/sql_types.py`, connectorx panicked on this table and nothing
reached Snowflake.
"""

from __future__ import annotations

import json
from decimal import Decimal

import psycopg2
import pytest
import sqlglot
from sqlglot import exp

import pipelines.products as products_pipeline
from sandbox.postgres import PostgresServer, to_libpq_url
from tests.snowflake.fakesnow_shim import SnowflakeEmulator
from tests.snowflake.test_fakesnow_loads import (  # noqa: F401 - pytest fixtures
    assert_parse_as_snowflake,
    data_statements,
    parse,
    snowflake,
    svc_dlt_key,
)
from tests.sources.products.conftest import UNCONSTRAINED_NUMERIC, XML_VALUES

pytestmark = [
    pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result"),
    pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning"),
]

# Snowflake column types dlt declares for the mapped PostgreSQL types (as sqlglot renders them).
EXPECTED_DDL_TYPES = {
    "C_SMALLINT": "DECIMAL(19, 0)",  # Snowflake has one integer type: NUMBER(p, 0)
    "C_INTEGER": "DECIMAL(19, 0)",
    "C_NUMERIC": "VARCHAR",
    "C_NUMERIC_12_2": "DECIMAL(12, 2)",
    "C_NUMERIC_30_20": "DECIMAL(30, 20)",
    "C_NUMERIC_38_0": "DECIMAL(38, 0)",
    "C_NUMERIC_50_10": "VARCHAR",
    "C_MONEY": "DECIMAL(19, 2)",
    "C_REAL": "DOUBLE",
    "C_VARCHAR": "VARCHAR(20)",
    "C_CHAR": "VARCHAR(5)",
    "C_DOMAIN_VARCHAR": "VARCHAR(8)",
    "C_BYTEA": "BINARY",
    "C_DATE": "DATE",
    "C_TIME": "TIME",
    "C_TIMETZ": "VARCHAR",
    "C_INTERVAL": "VARCHAR",
    "C_JSONB": "VARIANT",
    "C_INT_ARRAY": "VARIANT",
    "C_COMPOSITE": "VARIANT",
    "C_INT4RANGE": "VARCHAR",
    "C_XML": "VARCHAR",
}


def test_all_types_give_valid_snowflake_ddl_and_the_same_special_value_mapping(
    snowflake: SnowflakeEmulator,  # noqa: F811 - the imported fixture
    all_types_table: str,
    postgres_server: PostgresServer,
) -> None:
    # fakesnow (DuckDB underneath) stores NUMBER(38,0) as a 64-bit integer, which real Snowflake
    # does not; keep that column's value within 64 bits here (the DuckDB test loads all 38 digits).
    with psycopg2.connect(to_libpq_url(postgres_server.dsn)) as conn, conn.cursor() as cur:
        cur.execute("UPDATE all_types SET c_numeric_38_0 = 123456789012345678 WHERE id = 1")
    conn.close()
    products_pipeline.run()

    creates = [
        parse(s)
        for s in snowflake.statements()
        if s.upper().startswith("CREATE TABLE") and "ALL_TYPES" in s.upper()
    ]
    assert creates, "dlt sent no CREATE TABLE for ALL_TYPES"
    create = creates[0]
    assert isinstance(create, exp.Create)
    declared = {
        column.name: column.args["kind"].sql("snowflake")
        for column in create.find_all(exp.ColumnDef)
        if column.args.get("kind") is not None
    }
    for column, expected in EXPECTED_DDL_TYPES.items():
        assert declared[column] == sqlglot.parse_one(f"CAST(x AS {expected})", read="snowflake").to.sql(
            "snowflake"
        ), column
    assert "TIMESTAMP" in declared["C_TIMESTAMPTZ"] and "TIMESTAMP" in declared["C_TIMESTAMP"]
    assert_parse_as_snowflake(data_statements(snowflake))

    rows = {
        r[0]: r[1:]
        for r in snowflake.query(
            'SELECT "ID", "C_NUMERIC", "C_DATE", "C_TIMESTAMPTZ", "C_NUMERIC_12_2", "_PG_SPECIAL_VALUES", "C_XML" '
            "FROM RAW.PRODUCTS.ALL_TYPES"
        )
    }
    assert {i: r[0] for i, r in rows.items()} == UNCONSTRAINED_NUMERIC  # exact text
    assert rows[1][3] == Decimal("9999999999.99")
    for row_id, expected in {2: "infinity", 3: "-infinity"}.items():
        _, date, timestamptz, _, special, _ = rows[row_id]
        assert date is None and timestamptz is None
        recorded = json.loads(special)
        assert recorded["c_date"] == recorded["c_timestamptz"] == expected
    assert json.loads(rows[2][4])["c_numeric_12_2"] == "NaN" and rows[2][3] is None
    assert rows[1][4] is None and rows[1][1] is not None
    assert {i: r[5] for i, r in rows.items() if r[5] is not None} == XML_VALUES
