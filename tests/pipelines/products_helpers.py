"""Compare the destination with the source database, row by row and column by column."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from sandbox.postgres import fetch_table


def _normalise(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return value


def source_rows(dsn: str, table: str = "products") -> dict[int, dict[str, Any]]:
    """Live (not soft-deleted) rows of the source table, by id, as the destination should hold them."""
    rows = {}
    for row in fetch_table(dsn, table):
        if row["deleted_at"] is None:
            rows[row["id"]] = {k: _normalise(v) for k, v in row.items()}
    return rows


def destination_rows(warehouse: Path, table: str = "products") -> dict[int, dict[str, Any]]:
    """Rows of the destination table, by id, dlt's bookkeeping columns left out, JSON decoded."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        cursor = con.execute(f"select * from products.{table}")
        names = [d[0] for d in cursor.description]
        fetched = cursor.fetchall()
        types = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'products' and table_name = ?",
                [table],
            ).fetchall()
        )
    rows: dict[int, dict[str, Any]] = {}
    for values in fetched:
        row = {}
        for name, value in zip(names, values, strict=True):
            if name.startswith("_dlt"):
                continue
            if types[name] == "JSON" and value is not None:
                value = json.loads(value)
            row[name] = _normalise(value)
        if row["id"] in rows:
            raise AssertionError(f"duplicate id {row['id']} in products.{table}")
        rows[row["id"]] = row
    return rows


def assert_destination_equals_source(dsn: str, warehouse: Path, table: str = "products") -> None:
    """Every live source row is in the destination with every column equal, and nothing else is."""
    expected = source_rows(dsn, table)
    actual = destination_rows(warehouse, table)
    assert actual.keys() == expected.keys(), (
        f"missing {sorted(expected.keys() - actual.keys())[:10]}, extra {sorted(actual.keys() - expected.keys())[:10]}"
    )
    for key, row in expected.items():
        assert actual[key] == row, f"{table} id {key}: {actual[key]} != {row}"


def rows_at_latest_cursor(dsn: str, table: str = "products") -> int:
    """Rows sharing the newest `updated_at`: an incremental run re-reads these (the `>=` boundary)."""
    import psycopg2

    with psycopg2.connect(dsn.replace("+psycopg2", "")) as conn, conn.cursor() as cur:
        cur.execute(f"select count(*) from {table} where updated_at = (select max(updated_at) from {table})")
        row = cur.fetchone()
    assert row is not None
    return int(row[0])


def column_types(warehouse: Path, table: str = "products") -> dict[str, str]:
    """Destination column types of a products table."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return dict(
            con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'products' and table_name = ?",
                [table],
            ).fetchall()
        )


__all__ = [
    "Decimal",
    "assert_destination_equals_source",
    "column_types",
    "destination_rows",
    "rows_at_latest_cursor",
    "source_rows",
]
