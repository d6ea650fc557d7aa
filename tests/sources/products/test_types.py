"""PostgreSQL type fidelity (issue 11 points 2, 3 and 6): every value exact, mapped as documented, or refused.

Each test loads through the products pipeline for real (sandbox PostgreSQL, connectorx, DuckDB). On
the code before `utils/sql_types.py` they fail: connectorx panics (a BaseException that crashes the
run) on a dozen of these types, rounds unconstrained numeric to 10 places, turns `infinity` into
dates 260,000 years away, and `integer` lands as BIGINT.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg2
import pytest

import pipelines.products as products_pipeline
from sandbox.postgres import CatalogueMutator, PostgresServer, to_libpq_url
from tests.sources.products.conftest import (
    ALL_TYPES_TABLE,
    UNCONSTRAINED_NUMERIC,
    XML_VALUES,
    superuser_connection,
)
from utils import sql_types
from utils.errors import PermanentPipelineError
from utils.sql_types import SPECIAL_VALUES_COLUMN, NativeReaderPanicError, UnsupportedColumnTypeError

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")

# Destination (DuckDB) column types: widths follow the source; types without an equal arrive as
# their exact text form or as JSON.
EXPECTED_TYPES = {
    "c_smallint": "SMALLINT",
    "c_integer": "INTEGER",
    "c_bigint": "BIGINT",
    "c_numeric": "VARCHAR",
    "c_numeric_12_2": "DECIMAL(12,2)",
    "c_numeric_30_20": "DECIMAL(30,20)",
    "c_numeric_38_0": "DECIMAL(38,0)",
    "c_numeric_50_10": "VARCHAR",
    "c_numeric_negative_scale": "VARCHAR",  # numeric(5,-2): no warehouse decimal has a negative scale
    "c_numeric_scale_over_precision": "VARCHAR",
    "c_real": "DOUBLE",
    "c_double": "DOUBLE",
    "c_money": "DECIMAL(19,2)",
    "c_text": "VARCHAR",
    "c_bytea": "BLOB",
    "c_date": "DATE",
    "c_timestamp": "TIMESTAMP",
    "c_timestamptz": "TIMESTAMP WITH TIME ZONE",
    "c_time": "TIME",
    "c_timetz": "VARCHAR",
    "c_interval": "VARCHAR",
    "c_xml": "VARCHAR",
    "c_boolean": "BOOLEAN",
    "c_json": "JSON",
    "c_jsonb": "JSON",
    "c_int_array": "JSON",
    "c_composite": "JSON",
    "c_domain_numeric": "DECIMAL(12,2)",
    "c_oid": "BIGINT",
}


def load() -> None:
    products_pipeline.run()


def destination(
    warehouse: Path, table: str = ALL_TYPES_TABLE
) -> tuple[dict[str, str], dict[int, dict[str, Any]]]:
    """Column types and rows (by id) of a products table in the DuckDB file."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        types = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'products' and table_name = ?",
                [table],
            ).fetchall()
        )
        cursor = con.execute(f"select * from products.{table}")
        names = [d[0] for d in cursor.description]
        rows = {r[0]: dict(zip(names, r, strict=True)) for r in cursor.fetchall()}
    return types, rows


def source_text(server: PostgresServer, expression: str) -> dict[int, Any]:
    """`expression` per id, computed by PostgreSQL (e.g. a column's own text form)."""
    with psycopg2.connect(to_libpq_url(server.dsn)) as conn, conn.cursor() as cur:
        cur.execute(f"select id, {expression} from {ALL_TYPES_TABLE} order by id")
        result = dict(cur.fetchall())
    conn.close()
    return result


def source_columns(server: PostgresServer) -> list[str]:
    with psycopg2.connect(to_libpq_url(server.dsn)) as conn, conn.cursor() as cur:
        cur.execute(
            "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 "
            "and not attisdropped order by attnum",
            (ALL_TYPES_TABLE,),
        )
        names = [r[0] for r in cur.fetchall()]
    conn.close()
    return names


def test_every_builtin_type_loads_exactly(
    all_types_table: str, postgres_server: PostgresServer, warehouse: Path
) -> None:
    load()
    types, rows = destination(warehouse)
    assert set(rows) == set(range(1, 8))
    for column, expected in EXPECTED_TYPES.items():
        assert types[column] == expected, column
    plan = sql_types.plan_table(_engine(postgres_server), ALL_TYPES_TABLE, pipeline="products")
    assert not plan.refused
    special = {
        i: json.loads(r[SPECIAL_VALUES_COLUMN]) if r[SPECIAL_VALUES_COLUMN] else {} for i, r in rows.items()
    }
    # Every column cast server-side arrives as PostgreSQL's own text or JSON form, row for row.
    for column in source_columns(postgres_server):
        kind = plan.column(column)
        if kind.cast == "text" and kind.hints.get("data_type") == "text":
            expected_text = source_text(postgres_server, f"{column}::text")
            assert {i: r[column] for i, r in rows.items()} == expected_text, column
        elif kind.cast == "json":
            expected_json = source_text(postgres_server, f"to_jsonb({column})")
            assert {i: json.loads(r[column]) if r[column] is not None else None for i, r in rows.items()} == (
                expected_json
            ), column
    # Native columns: the values themselves, extremes included.
    assert [rows[i]["c_smallint"] for i in (1, 2)] == [-32768, 32767]
    assert [rows[i]["c_integer"] for i in (1, 2)] == [-2147483648, 2147483647]
    assert [rows[i]["c_bigint"] for i in (1, 2)] == [-(2**63), 2**63 - 1]
    assert rows[1]["c_numeric_12_2"] == Decimal("9999999999.99")
    assert rows[1]["c_numeric_30_20"] == Decimal("1234567890.12345678901234567890")
    assert rows[1]["c_numeric_38_0"] == Decimal("12345678901234567890123456789012345678")
    assert rows[1]["c_numeric_50_10"] == "1234567890123456789012345678901234567890.0123456789"
    assert rows[1]["c_numeric_negative_scale"] == "1234600"  # as PostgreSQL stored it
    assert rows[1]["c_numeric_scale_over_precision"] == "0.00123"
    assert [rows[i]["c_money"] for i in (1, 2)] == [
        Decimal("-92233720368547758.08"),
        Decimal("92233720368547758.07"),
    ]
    assert rows[1]["c_real"] == pytest.approx(1.1, rel=1e-7)
    assert rows[2]["c_real"] != rows[2]["c_real"]  # NaN stays NaN (both warehouses have it)
    assert [rows[i]["c_double"] for i in (1, 2, 3)] == [2.718281828459045, float("inf"), float("-inf")]
    assert rows[1]["c_text"] == 'héllo ☕ "quoted", back\\slash'
    assert [rows[i]["c_char"] for i in (1, 2)] == ["ab   ", "     "]  # char(n) keeps its padding
    assert [rows[i]["c_bytea"] for i in (1, 2)] == [b"\xde\xad\xbe\xef", b""]
    assert rows[1]["c_date"] == dt.date(2024, 2, 29)
    assert rows[1]["c_timestamp"] == dt.datetime(2024, 1, 1, 12, 0, 0, 123456)
    assert rows[1]["c_timestamptz"] == dt.datetime(2024, 1, 1, 10, 0, 0, 123456, tzinfo=dt.UTC)
    assert rows[1]["c_time"] == dt.time(23, 59, 59, 999999)
    assert [rows[i]["c_boolean"] for i in (1, 2, 7)] == [True, False, None]
    assert rows[1]["c_domain_numeric"] == Decimal("12.34")
    assert rows[1]["c_oid"] == 4294967295  # unsigned 32-bit, beyond INTEGER
    assert rows[1]["c_composite"] is not None and json.loads(rows[1]["c_composite"]) == {"a": 1, "b": "x"}
    assert json.loads(rows[1]["c_jsonb"]) == {"big": 12345678901234567890, "n": None}
    # xml: PostgreSQL's text form, character for character (declaration, entities, CDATA kept).
    assert {i: rows[i]["c_xml"] for i in (1, 2, 3, 7)} == {
        1: XML_VALUES[1],
        2: XML_VALUES[2],
        3: None,
        7: None,
    }
    assert json.loads(rows[2]["c_int_array"]) == [] and rows[7]["c_int_array"] is None
    # Row 7 is NULL everywhere but its keys; no special values on it.
    assert all(
        v is None for k, v in rows[7].items() if k not in ("id", "updated_at") and not k.startswith("_dlt")
    )
    assert special[1] == {} and special[7] == {}


def test_unconstrained_numeric_arrives_exact_as_text(all_types_table: str, warehouse: Path) -> None:
    load()
    types, rows = destination(warehouse)
    assert types["c_numeric"] == "VARCHAR"
    assert {i: r["c_numeric"] for i, r in rows.items()} == UNCONSTRAINED_NUMERIC
    for value in UNCONSTRAINED_NUMERIC.values():  # what an analyst casts is still the exact number
        if value and value not in ("NaN", "-Infinity"):
            assert Decimal(value) == Decimal(value.rstrip("0") or "0")


def test_infinities_and_out_of_range_dates_are_null_with_the_real_value_recorded(
    all_types_table: str, warehouse: Path
) -> None:
    load()
    _, rows = destination(warehouse)
    special = {
        i: json.loads(r[SPECIAL_VALUES_COLUMN]) if r[SPECIAL_VALUES_COLUMN] else {} for i, r in rows.items()
    }
    assert special[2] == {
        "c_date": "infinity",
        "c_timestamp": "infinity",
        "c_timestamptz": "infinity",
        "c_timestamp3": "-infinity",
        "c_numeric_12_2": "NaN",
        "c_numeric_30_20": "NaN",
        "c_time": "24:00:00",
    }
    assert special[3] == {
        "c_date": "-infinity",
        "c_timestamp": "-infinity",
        "c_timestamptz": "-infinity",
        "c_timestamp3": "infinity",
    }
    assert special[4] == {
        "c_date": "4713-01-01 BC",
        "c_timestamp": "0001-01-01 00:00:00 BC",
        "c_timestamptz": "294276-12-31 23:59:59.999999+00",
    }
    for row_id, values in special.items():
        for column in values:
            assert rows[row_id][column] is None, (row_id, column)  # never a made-up date or number
    # No date anywhere is outside what both warehouses hold.
    for row in rows.values():
        for column in ("c_date", "c_timestamp", "c_timestamptz", "c_timestamp3"):
            if row[column] is not None:
                assert 1 <= row[column].year <= 9999


def test_integer_and_text_widths_follow_the_source(catalogue: CatalogueMutator, warehouse: Path) -> None:
    products_pipeline.run()
    types, _ = destination(warehouse, "products")
    assert types["stock"] == "INTEGER"  # integer, not BIGINT
    assert types["id"] == types["category_id"] == "BIGINT"
    assert types["price"] == "DECIMAL(12,2)"
    columns = products_pipeline.pipeline().default_schema.get_table("products")["columns"]
    assert columns["currency"]["precision"] == 3  # char(3): VARCHAR(3) on Snowflake
    assert SPECIAL_VALUES_COLUMN not in types  # only written once a special value is seen
    # The load files carry the planned types too, not the reader's decimal128(38,10) and int64,
    # so the destination does not convert every value again (issue 14).
    import pyarrow.parquet as pq

    files = sorted(Path(products_pipeline.pipeline().working_dir).glob("load/loaded/*/*/products.*.parquet"))
    assert files
    for file in files:
        schema = pq.read_schema(file)
        assert str(schema.field("price").type) == "decimal128(12, 2)"
        assert str(schema.field("stock").type) == "int32"


def test_an_extension_type_is_refused_before_anything_is_read(
    postgres_server: PostgresServer, all_types_table: str, warehouse: Path
) -> None:
    with superuser_connection(postgres_server) as conn, conn.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
        cur.execute(f"ALTER TABLE {ALL_TYPES_TABLE} ADD COLUMN embedding vector(3)")
        cur.execute(f"UPDATE {ALL_TYPES_TABLE} SET embedding = '[1,2,3]' WHERE id = 1")
    conn.close()
    with pytest.raises(UnsupportedColumnTypeError) as refused:
        load()
    message = str(refused.value)
    assert isinstance(refused.value, PermanentPipelineError)
    assert "'products'" in message and "all_types.embedding (vector(3))" in message
    assert "Nothing was read" in message
    assert not warehouse.exists() or not _tables(warehouse)


def test_a_reader_panic_is_a_permanent_error_naming_table_and_column(
    all_types_table: str, warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pretend `interval` were read natively: connectorx panics on it (a BaseException).
    monkeypatch.setitem(sql_types._NATIVE, "interval", {"data_type": "text"})
    with pytest.raises(NativeReaderPanicError) as crashed:
        load()
    message = str(crashed.value)
    assert "'products'" in message and "table all_types" in message and "c_interval" in message
    assert isinstance(crashed.value, Exception)  # the flows' retry policy and alerts see it
    assert "all_types" not in _tables(warehouse)  # nothing of the run loaded


def _tables(warehouse: Path) -> set[str]:
    if not warehouse.exists():
        return set()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}


def _engine(server: PostgresServer) -> Any:
    import sqlalchemy as sa

    return sa.create_engine(server.reader_dsn)


def test_special_values_in_small_batches_and_incremental_runs(
    all_types_table: str, postgres_server: PostgresServer, warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two rows per batch: some batches carry `_pg_special_values`, others do not write it at all.
    monkeypatch.setenv("SOURCES__PRODUCTS__CHUNK_SIZE", "2")
    load()
    with psycopg2.connect(to_libpq_url(postgres_server.dsn)) as conn, conn.cursor() as cur:
        cur.execute(
            f"UPDATE {ALL_TYPES_TABLE} SET updated_at = '2024-07-01', c_date = 'infinity',"
            " c_numeric_38_0 = 1 WHERE id = 1;"
            f" UPDATE {ALL_TYPES_TABLE} SET updated_at = '2024-07-01', c_date = '2024-03-01' WHERE id = 2"
        )
    conn.close()
    load()  # incremental: only rows 1 and 2 are read again, and the column types do not drift
    types, rows = destination(warehouse)
    assert types["c_numeric_38_0"] == "DECIMAL(38,0)" and types["c_numeric"] == "VARCHAR"
    assert rows[1]["c_date"] is None and json.loads(rows[1][SPECIAL_VALUES_COLUMN]) == {"c_date": "infinity"}
    assert rows[1]["c_numeric_38_0"] == Decimal(1)
    assert rows[2]["c_date"] == dt.date(2024, 3, 1)
    assert json.loads(rows[2][SPECIAL_VALUES_COLUMN])["c_timestamp"] == "infinity"  # the rest of row 2 stays
    assert "c_date" not in json.loads(rows[2][SPECIAL_VALUES_COLUMN])  # no stale record of the old value
    assert json.loads(rows[3][SPECIAL_VALUES_COLUMN])["c_date"] == "-infinity"
    assert rows[5][SPECIAL_VALUES_COLUMN] is None


def test_a_large_json_document_and_a_nul_escape_arrive_character_for_character(
    postgres_server: PostgresServer, warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # About 6 MB of jsonb in one value (a 24.7 MB one was measured the same way) and a `json` value
    # holding the \u0000 escape, which `jsonb` refuses and a NUL-stripping writer would damage.
    with psycopg2.connect(to_libpq_url(postgres_server.dsn)) as conn, conn.cursor() as cur:
        cur.execute(
            "DROP TABLE IF EXISTS big_docs;"
            " CREATE TABLE big_docs (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now(),"
            " deleted_at timestamptz, doc jsonb, raw json);"
            " INSERT INTO big_docs (id, doc, raw) SELECT 1, jsonb_build_object('items', jsonb_agg("
            "jsonb_build_object('k', g, 'v', repeat('x', 100), 'n', 1234567890.123456789012345))),"
            ' \'{"a": "x\\u0000y", "big": 123456789012345678901234567890.123456789}\''
            " FROM generate_series(1, 50000) AS g;"
            " GRANT SELECT ON big_docs TO shop_reader;"
        )
        cur.execute("SELECT md5(doc::text), length(doc::text), raw::text FROM big_docs")
        digest, size, raw = cur.fetchone()
    conn.close()
    assert size > 5_000_000
    for key, value in postgres_server.dlt_credentials().items():
        monkeypatch.setenv(f"SOURCES__PRODUCTS__CREDENTIALS__{key.upper()}", str(value))
    monkeypatch.setenv("SOURCES__PRODUCTS__TABLES", '["big_docs"]')
    try:
        load()
    finally:
        with psycopg2.connect(to_libpq_url(postgres_server.dsn)) as conn, conn.cursor() as cur:
            cur.execute("DROP TABLE big_docs")
        conn.close()
    types, rows = destination(warehouse, "big_docs")
    assert types["doc"] == "JSON" and types["raw"] == "JSON"
    assert hashlib.md5(rows[1]["doc"].encode()).hexdigest() == digest  # noqa: S324 - a checksum
    assert rows[1]["raw"] == raw == '{"a": "x\\u0000y", "big": 123456789012345678901234567890.123456789}'
