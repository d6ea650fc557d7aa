"""The products pipeline into DuckDB against a real PostgreSQL: exact, incremental, idempotent."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg2
import pytest

from pipelines import products as products_pipeline
from sandbox.postgres import CatalogueMutator, PostgresServer
from sources.products.reconcile import ReconciliationRefusedError
from tests.conftest import CATALOGUE_SIZE
from tests.pipelines.products_helpers import (
    assert_destination_equals_source,
    column_types,
    destination_rows,
    rows_at_latest_cursor,
    source_rows,
)
from utils.errors import (
    ConfigurationError,
    PermanentPipelineError,
    SchemaDriftError,
    UpstreamUnreachableError,
)
from utils.load_summary import LoadSummary

ROOT = Path(__file__).resolve().parents[2]


def load() -> LoadSummary:
    return products_pipeline.run()


def test_full_load_equals_the_source_with_exact_types(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, warehouse: Path
) -> None:
    summary = load()
    assert summary.row_counts["products"] <= CATALOGUE_SIZE
    assert_destination_equals_source(postgres_server.dsn, warehouse, "products")
    assert_destination_equals_source(postgres_server.dsn, warehouse, "categories")
    types = column_types(warehouse)
    assert types["price"] == "DECIMAL(12,2)"  # exact, never a float
    assert types["created_at"] == types["updated_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["attributes"] == types["tags"] == "JSON"
    rows = destination_rows(warehouse)
    # The awkward values the seed plants survive: NULLs, empty JSON, JSON nulls, big integers.
    assert any(r["description"] is None for r in rows.values())
    assert any(r["tags"] is None for r in rows.values())
    assert any(r["tags"] == [] for r in rows.values())
    assert any(r["attributes"] == {} for r in rows.values())
    assert any(isinstance(r["attributes"], dict) and None in r["attributes"].values() for r in rows.values())
    assert all(isinstance(r["price"], Decimal) for r in rows.values())


def test_soft_deleted_rows_are_removed(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, warehouse: Path
) -> None:
    load()
    live = set(destination_rows(warehouse))
    deleted = catalogue.soft_delete_products(sorted(live)[:25])
    load()
    remaining = set(destination_rows(warehouse))
    assert not remaining & set(deleted)
    assert remaining == live - set(deleted)


def test_mutations_then_incremental_reads_only_the_changes(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, warehouse: Path
) -> None:
    load()
    boundary = rows_at_latest_cursor(postgres_server.dsn)
    inserted = catalogue.insert_products(40)
    updated = catalogue.update_products(60)
    deleted = catalogue.soft_delete_products(30)
    summary = load()
    assert_destination_equals_source(postgres_server.dsn, warehouse, "products")
    changed = len(set(inserted) | set(updated) | set(deleted))
    # Only the changed rows (plus the few that share the last cursor value) were read.
    assert changed <= summary.row_counts["products"] <= changed + boundary
    # A run with nothing new reads at most the boundary rows and changes nothing.
    before = destination_rows(warehouse)
    again = load()
    assert again.row_counts.get("products", 0) == rows_at_latest_cursor(postgres_server.dsn)
    assert destination_rows(warehouse) == before


def test_rows_sharing_the_last_cursor_value_are_loaded_once(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, warehouse: Path
) -> None:
    # In the past: the late-commit guard never stores a cursor later than the extract's start.
    instant = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    first = catalogue.update_products(20)
    catalogue.hard_set_updated_at(first, instant)
    load()  # the cursor now stands at `instant`
    # More rows change "in the same instant" - e.g. a transaction that committed after our read.
    later = catalogue.update_products(15)
    catalogue.hard_set_updated_at(later, instant)
    load()
    assert_destination_equals_source(postgres_server.dsn, warehouse, "products")
    state = products_pipeline.pipeline().state["sources"]["products"]["resources"]["products"]
    incremental = state["incremental"]["updated_at"]
    assert incremental["last_value"] == instant
    assert incremental["unique_hashes"] == []  # the state stays one timestamp, however many rows tie


@pytest.mark.slow  # runs killed in subprocesses
def test_sigkill_during_load_then_rerun_loses_and_duplicates_nothing(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, warehouse: Path, tmp_path: Path
) -> None:
    load()
    catalogue.update_products(500)
    catalogue.insert_products(300)
    # Small files, so the load is several jobs and the kill lands between them.
    env = {**os.environ, "DATA_WRITER__FILE_MAX_ITEMS": "100", "SOURCES__PRODUCTS__CHUNK_SIZE": "100"}
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "kill_during_load.py")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output, _ = child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL, output
    assert "killed after" in output
    assert products_pipeline.pipeline().has_pending_data  # the crash left a package half loaded

    catalogue.update_products(10)  # and more changes arrive before the rerun
    load()
    assert not products_pipeline.pipeline().has_pending_data
    assert_destination_equals_source(postgres_server.dsn, warehouse, "products")


def test_new_upstream_column_arrives(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, warehouse: Path
) -> None:
    load()
    catalogue.add_column("products", "weight_kg", "numeric(8,3)", fill_sql="round((id % 97) / 10.0, 3)")
    load()
    assert column_types(warehouse)["weight_kg"] == "DECIMAL(8,3)"
    assert_destination_equals_source(postgres_server.dsn, warehouse, "products")


def test_incompatible_type_change_stops_the_load_and_changes_nothing(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, warehouse: Path
) -> None:
    load()
    before = destination_rows(warehouse)
    catalogue.alter_column_type("products", "price", "text", using_sql="price::text || ' EUR'")
    catalogue.hard_set_updated_at(sorted(before)[:20], datetime.now(UTC))  # the app touches some rows
    with pytest.raises(SchemaDriftError) as caught:
        load()
    message = str(caught.value)
    assert "products" in message
    assert "price" in message
    assert destination_rows(warehouse) == before
    assert column_types(warehouse)["price"] == "DECIMAL(12,2)"
    assert not products_pipeline.pipeline().has_pending_data


def test_wrong_password_names_the_credentials_and_hides_the_password(
    catalogue: CatalogueMutator, monkeypatch: pytest.MonkeyPatch, warehouse: Path
) -> None:
    monkeypatch.setenv("SOURCES__PRODUCTS__CREDENTIALS__PASSWORD", "not-the-password-xyz")
    with pytest.raises(ConfigurationError) as caught:
        load()
    message = str(caught.value)
    assert "the password was rejected" in message
    assert "sources.products.credentials" in message
    assert "not-the-password-xyz" not in message
    assert not warehouse.exists() or "products" not in _schemas(warehouse)


def test_a_refused_connection_fails_at_once_as_unreachable(
    catalogue: CatalogueMutator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A refused first connection (wrong port, server not running) is permanent: the run fails in
    # seconds naming the setting, like the HTTP sources' refused connections (issue 12.3).
    monkeypatch.setenv("SOURCES__PRODUCTS__CREDENTIALS__PORT", "9")
    with pytest.raises(
        UpstreamUnreachableError, match=r"cannot connect to PostgreSQL at 127\.0\.0\.1:9/shop"
    ):
        load()


def test_missing_credentials_name_the_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("SOURCES__PRODUCTS__"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no developer secrets.toml
    with pytest.raises(
        ConfigurationError, match=r"Pipeline 'products' is missing sources\.products\.credentials"
    ):
        load()


def _schemas(warehouse: Path) -> set[str]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {r[0] for r in con.execute("select schema_name from information_schema.schemata").fetchall()}


def test_json_values_are_exact(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, warehouse: Path
) -> None:
    load()
    with psycopg2.connect(postgres_server.dsn.replace("+psycopg2", "")) as conn, conn.cursor() as cur:
        cur.execute(
            "select id, attributes::text from products "
            "where attributes::text like '%9007199254740993%' and deleted_at is null"
        )
        hits = cur.fetchall()
    assert hits, "the seed plants 2^53 + 1 in some attributes"
    rows = destination_rows(warehouse)
    for product_id, text in hits:
        assert rows[product_id]["attributes"] == json.loads(text)
        assert "9007199254740993" in json.dumps(rows[product_id]["attributes"])


def test_time_zones_are_kept(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, warehouse: Path
) -> None:
    load()
    expected = source_rows(postgres_server.dsn)
    actual = destination_rows(warehouse)
    some = next(iter(expected))
    assert actual[some]["updated_at"].utcoffset() == timedelta(0)
    assert actual[some]["updated_at"] == expected[some]["updated_at"]


# --- issue 11.1: a change whose transaction commits late is never lost ---------------------------


def _cursor(table: str = "products") -> datetime:
    state = products_pipeline.pipeline().state["sources"]["products"]["resources"][table]
    value: datetime = state["incremental"]["updated_at"]["last_value"]
    return value


def test_a_transaction_open_across_runs_is_loaded_after_it_commits(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, warehouse: Path
) -> None:
    load()
    late, early = sorted(destination_rows(warehouse))[:2]
    # Session A updates a product (the trigger stamps T1) and keeps its transaction open.
    session_a = psycopg2.connect(postgres_server.dsn.replace("+psycopg2", ""))
    try:
        with session_a.cursor() as cur:
            cur.execute("select now()")
            a_started = cur.fetchone()[0]
            cur.execute("update products set price = 4321.00 where id = %s returning updated_at", (late,))
            t1 = cur.fetchone()[0]
        # Session B updates another product (T2 > T1) and commits.
        catalogue.update_products([early])
        load()
        assert destination_rows(warehouse)[early]["price"] == source_rows(postgres_server.dsn)[early]["price"]
        # The stored cursor stays at or before A's start, although B's row is newer.
        assert _cursor() <= a_started <= t1
        load()  # a second run while A is still open: still before A's start
        assert _cursor() <= a_started
        session_a.commit()
    finally:
        session_a.close()
    load()
    assert destination_rows(warehouse)[late]["price"] == Decimal("4321.00")
    assert_destination_equals_source(postgres_server.dsn, warehouse, "products")
    # With no transaction open the cursor moves on to the newest row again.
    load()
    assert _cursor() == max(r["updated_at"] for r in source_rows(postgres_server.dsn).values())


def test_a_transaction_that_writes_late_stamped_with_its_start_is_loaded(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, warehouse: Path
) -> None:
    # A trigger stamping now() gives every row the transaction's *start* time, however late the row
    # is written: a transaction open (not yet writing) during two runs must still be caught.
    load()
    target = sorted(destination_rows(warehouse))[5]
    session_a = psycopg2.connect(postgres_server.dsn.replace("+psycopg2", ""))
    try:
        with session_a.cursor() as cur:
            cur.execute("select now()")  # the transaction starts here and has written nothing
            catalogue.update_products(10)
            load()
            load()
            cur.execute("select set_config('sandbox.freeze_updated_at', 'on', true)")
            cur.execute("update products set stock = 777, updated_at = now() where id = %s", (target,))
        session_a.commit()
    finally:
        session_a.close()
    load()
    assert destination_rows(warehouse)[target]["stock"] == 777
    assert_destination_equals_source(postgres_server.dsn, warehouse, "products")


def test_without_pg_read_all_stats_the_run_fails_at_once_naming_the_grant(
    catalogue: CatalogueMutator,
    postgres_server: PostgresServer,
    warehouse: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    postgres_server.set_reader_sees_all_sessions(False)
    try:
        with pytest.raises(ConfigurationError) as caught:
            load()
        message = str(caught.value)
        assert "GRANT pg_read_all_stats TO shop_reader" in message
        assert "sources.products.late_commit_guard" in message
        assert not warehouse.exists() or not destination_tables(warehouse)
        # Switched off on purpose, the run loads (and may miss late commits, as documented).
        monkeypatch.setenv("SOURCES__PRODUCTS__LATE_COMMIT_GUARD", "false")
        load()
        assert_destination_equals_source(postgres_server.dsn, warehouse, "products")
    finally:
        postgres_server.set_reader_sees_all_sessions(True)


def destination_tables(warehouse: Path) -> set[str]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'products'"
            ).fetchall()
        }


# --- issue 11.7 (products): a NULL cursor is loaded, not a retried failure -----------------------


def _null_cursor(postgres_server: PostgresServer, ids: list[int], **changes: object) -> None:
    sets = ", ".join([f"{column} = %s" for column in changes] + ["updated_at = NULL"])
    with psycopg2.connect(postgres_server.dsn.replace("+psycopg2", "")) as conn, conn.cursor() as cur:
        cur.execute(f"update products set {sets} where id = any(%s)", (*changes.values(), ids))
    conn.close()


def test_rows_with_a_null_cursor_are_loaded_and_read_again_until_stamped(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, warehouse: Path
) -> None:
    with psycopg2.connect(postgres_server.dsn.replace("+psycopg2", "")) as conn, conn.cursor() as cur:
        cur.execute("alter table products alter column updated_at drop not null")
        cur.execute("select id from products where deleted_at is null order by id limit 3")
        nulls = [int(r[0]) for r in cur.fetchall()]
    conn.close()
    _null_cursor(postgres_server, nulls)
    first = load()  # before: PipelineError "...has value None..." retried four times
    assert first.row_counts["products"] >= len(nulls)
    assert_destination_equals_source(postgres_server.dsn, warehouse, "products")
    assert all(destination_rows(warehouse)[i]["updated_at"] is None for i in nulls)
    trace = products_pipeline.pipeline().last_trace
    extract_metrics = next(iter(trace.last_extract_info.metrics.values()))[0]
    assert extract_metrics["resource_metrics"]["products"].custom_metrics["rows_without_cursor"] == len(nulls)

    # A row that loses its cursor after the first load, with a new value, arrives too: every run
    # reads the NULL-cursor rows again (`OR updated_at IS NULL`).
    later = sorted(set(destination_rows(warehouse)) - set(nulls))[0]
    _null_cursor(postgres_server, [later], stock=4242)
    again = load()
    assert again.row_counts["products"] >= len(nulls) + 1
    assert destination_rows(warehouse)[later]["stock"] == 4242
    # Once the application stamps them, they are ordinary rows.
    catalogue.update_products([*nulls, later])
    load()
    assert_destination_equals_source(postgres_server.dsn, warehouse, "products")
    assert all(destination_rows(warehouse)[i]["updated_at"] is not None for i in [*nulls, later])


# --- issue 11.5: rows deleted physically upstream are removed by a key reconciliation -------------


def _delete_physically(postgres_server: PostgresServer, ids: list[int]) -> None:
    with psycopg2.connect(postgres_server.dsn.replace("+psycopg2", "")) as conn, conn.cursor() as cur:
        cur.execute("delete from products where id = any(%s)", (ids,))
        assert cur.rowcount == len(ids)
    conn.close()


def test_physically_deleted_rows_are_removed_every_n_runs(
    catalogue: CatalogueMutator,
    postgres_server: PostgresServer,
    warehouse: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOURCES__PRODUCTS__RECONCILE_EVERY_RUNS", "2")
    monkeypatch.setenv("SOURCES__PRODUCTS__RECONCILE_CHUNK_SIZE", "300")  # several chunks
    first = load()
    # A new working dir reconciles at once - but this first load copied both tables whole, which
    # counts as a reconciliation: nothing is compared, the count restarts.
    assert first.reconciled_deletes is None
    assert any("Key reconciliation counted as done" in note for note in first.notes)
    live = sorted(destination_rows(warehouse))
    # Spread over chunk boundaries: the first and last ids, and some in between.
    gone = [live[0], live[1], live[299], live[300], live[len(live) // 2], live[-1]]
    _delete_physically(postgres_server, gone)
    second = load()
    assert second.reconciled_deletes is None  # one run since the last reconciliation: not yet due
    assert set(gone) <= set(destination_rows(warehouse))
    third = load()
    assert third.reconciled_deletes == {"categories": 0, "products": len(gone)}
    assert any("key reconciliation" in line and f"products {len(gone)}" in line for line in third.lines())
    assert not set(gone) & set(destination_rows(warehouse))
    assert_destination_equals_source(postgres_server.dsn, warehouse, "products")


def test_a_new_working_dir_over_a_loaded_table_reconciles_at_once(
    catalogue: CatalogueMutator,
    postgres_server: PostgresServer,
    warehouse: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    load()
    gone = sorted(destination_rows(warehouse))[:3]
    _delete_physically(postgres_server, gone)
    # A new container: no local state, no cursor; the tables hold rows, so they are merged into and
    # the run is no copy of the whole table - the reconciliation is due at once.
    shutil.rmtree(tmp_path / "dlt")
    again = load()
    assert again.reconciled_deletes == {"categories": 0, "products": len(gone)}
    assert not set(gone) & set(destination_rows(warehouse))


def test_reconciliation_that_would_empty_the_table_deletes_nothing(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, warehouse: Path
) -> None:
    load()
    before = destination_rows(warehouse)
    ids = sorted(source_rows(postgres_server.dsn))
    _delete_physically(postgres_server, ids[: int(len(ids) * 0.6)])
    with pytest.raises(ReconciliationRefusedError) as caught:
        products_pipeline.run(reconcile=True)
    assert isinstance(caught.value, PermanentPipelineError)
    assert "reconcile_max_delete_fraction" in str(caught.value)
    assert destination_rows(warehouse).keys() == before.keys()
