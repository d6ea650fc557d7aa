"""First loads and full refreshes append into the empty table; every other run merges (issue 14)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines import products as products_pipeline
from sandbox.postgres import CatalogueMutator, PostgresServer
from sources.products.first_load import FIRST_LOAD_HINT, after_incremental, append_directly, drop_soft_deleted
from tests.pipelines.products_helpers import assert_destination_equals_source, column_types, destination_rows
from utils.load_summary import LoadSummary

ROOT = Path(__file__).resolve().parents[2]


def load(full_refresh: bool = False) -> LoadSummary:
    return products_pipeline.run(full_refresh=full_refresh)


def took_fast_path(table: str = "products") -> bool:
    return bool(products_pipeline.pipeline().default_schema.tables[table].get(FIRST_LOAD_HINT))


def staging_rows(warehouse: Path, table: str = "products") -> int | None:
    """Rows in dlt's staging copy of `table`, or None when there is no staging table."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        exists = con.execute(
            "select count(*) from information_schema.tables where table_schema = 'products_staging' "
            "and table_name = ?",
            [table],
        ).fetchall()[0][0]
        if not exists:
            return None
        return int(con.execute(f"select count(*) from products_staging.{table}").fetchall()[0][0])


def soft_deleted_in_source(postgres_server: PostgresServer) -> int:
    return int(_scalar(postgres_server, "select count(*) from products where deleted_at is not null"))


def _scalar(postgres_server: PostgresServer, query: str) -> Any:
    import psycopg2

    with psycopg2.connect(postgres_server.dsn.replace("+psycopg2", "")) as conn, conn.cursor() as cur:
        cur.execute(query)
        row = cur.fetchone()
    conn.close()
    assert row is not None
    return row[0]


def stored_cursor(table: str = "products") -> Any:
    state = products_pipeline.pipeline().state["sources"]["products"]["resources"][table]
    return state["incremental"]["updated_at"]["last_value"]


def test_first_load_appends_without_a_staging_copy_and_drops_soft_deleted_rows(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, warehouse: Path
) -> None:
    assert soft_deleted_in_source(postgres_server) > 0, "the seed soft-deletes about 3 % of products"
    load()
    assert took_fast_path("products")
    assert took_fast_path("categories")
    assert staging_rows(warehouse) is None  # no 1M-row copy left in products_staging
    assert_destination_equals_source(postgres_server.dsn, warehouse, "products")
    assert_destination_equals_source(postgres_server.dsn, warehouse, "categories")
    # The next run merges again, and its soft deletes and updates arrive as on the merge path.
    deleted = catalogue.soft_delete_products(25)
    catalogue.update_products(40)
    load()
    assert not took_fast_path("products")
    assert products_pipeline.pipeline().default_schema.tables["products"]["write_disposition"] == "merge"
    assert not set(deleted) & set(destination_rows(warehouse))
    assert_destination_equals_source(postgres_server.dsn, warehouse, "products")


def test_fast_path_gives_the_same_table_as_the_merge_path(
    catalogue: CatalogueMutator,
    postgres_server: PostgresServer,
    warehouse: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catalogue.soft_delete_products(50)
    load()
    assert took_fast_path()
    fast_rows, fast_types = destination_rows(warehouse), column_types(warehouse)

    # The same catalogue through the merge path, into another warehouse and working dir.
    merged = tmp_path / "merged.duckdb"
    monkeypatch.setenv("LOCAL__DUCKDB_PATH", str(merged))
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt-merged"))
    monkeypatch.setattr(products_pipeline.first_load, "prepare", lambda *_, **__: [])
    load()
    assert not took_fast_path()
    assert staging_rows(merged) is not None  # this one did go through staging
    assert destination_rows(merged) == fast_rows
    assert column_types(merged) == fast_types  # dlt's own columns included


def test_full_refresh_appends_into_the_dropped_tables(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, warehouse: Path
) -> None:
    load()
    catalogue.update_products(30)
    load()  # a merge: 30-odd rows pass through staging
    assert not took_fast_path()
    staged = staging_rows(warehouse)
    assert staged is not None and staged < 100
    catalogue.soft_delete_products(20)
    catalogue.insert_products(10)
    load(full_refresh=True)
    assert took_fast_path()
    # The refresh dropped the staging table too, and did not fill it again with the whole catalogue.
    assert staging_rows(warehouse) is None
    assert_destination_equals_source(postgres_server.dsn, warehouse, "products")
    load()  # and the run after the refresh merges from the refreshed cursor
    assert not took_fast_path()
    assert_destination_equals_source(postgres_server.dsn, warehouse, "products")


def test_a_table_that_holds_rows_is_merged_into_even_without_a_cursor(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, warehouse: Path, tmp_path: Path
) -> None:
    load()
    # The worker lost its working directory (a new container): no local cursor, the table is full.
    shutil.rmtree(tmp_path / "dlt")
    catalogue.update_products(20)
    load()
    assert not took_fast_path()
    assert_destination_equals_source(postgres_server.dsn, warehouse, "products")  # no duplicates


@pytest.mark.slow  # runs killed in subprocesses
def test_sigkill_during_the_first_load_then_rerun_loses_and_duplicates_nothing(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, warehouse: Path
) -> None:
    # Small files, so the first load is many jobs and the kill lands between them.
    env = {**os.environ, "DATA_WRITER__FILE_MAX_ITEMS": "100", "SOURCES__PRODUCTS__CHUNK_SIZE": "100"}
    child = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "kill_during_load.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr
    pipeline = products_pipeline.pipeline()
    assert pipeline.has_pending_data
    packages = pipeline._get_load_storage().normalized_packages
    (load_id,) = packages.list_packages()
    completed = [
        job.file_name()
        for state, job in packages.list_job_with_states_for_table(load_id, "products")
        if state == "completed_jobs"
    ]
    assert completed, "the kill came after a products job completed"
    # The worst moment to die: a job's rows were committed but its completion was not recorded.
    # (Simulated: one completed job goes back to started, as if the kill had come a moment earlier.)
    packages._move_job(load_id, "completed_jobs", "started_jobs", completed[0])
    loaded_before_rerun = len(destination_rows(warehouse))
    assert loaded_before_rerun > 0

    catalogue.update_products(10)  # more changes arrive before the rerun
    load()
    assert not products_pipeline.pipeline().has_pending_data
    assert_destination_equals_source(postgres_server.dsn, warehouse, "products")  # raises on a duplicate id


def test_drop_soft_deleted_filters_arrow_batches_and_rows() -> None:
    import pyarrow as pa

    table = pa.table({"id": [1, 2, 3], "deleted_at": pa.array([None, 5, None], type=pa.int64())})
    assert drop_soft_deleted(table).column("id").to_pylist() == [1, 3]
    batch = table.to_batches()[0]
    assert drop_soft_deleted(batch).column("id").to_pylist() == [1, 3]
    untouched = pa.table({"id": [1], "deleted_at": pa.array([None], type=pa.int64())})
    assert drop_soft_deleted(untouched) is untouched  # no copy when nothing is deleted
    assert drop_soft_deleted([{"id": 1, "deleted_at": None}, {"id": 2, "deleted_at": "x"}]) == [
        {"id": 1, "deleted_at": None}
    ]
    assert drop_soft_deleted({"id": 2, "deleted_at": "x"}) is None


def test_first_load_cursor_covers_the_soft_deleted_rows(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, warehouse: Path
) -> None:
    # Soft-deleting bumps updated_at: the newest rows of the table are now soft-deleted ones.
    deleted = catalogue.soft_delete_products(5)
    newest = _scalar(postgres_server, "select max(updated_at) from products")
    newest_live = _scalar(postgres_server, "select max(updated_at) from products where deleted_at is null")
    assert newest > newest_live
    load()
    assert took_fast_path()
    assert not set(deleted) & set(destination_rows(warehouse))
    # As on the merge path, which reads them and deletes them: the cursor does not stay behind them
    # (it did when the rows were dropped before dlt's incremental step).
    assert stored_cursor() == newest


def test_fast_path_passes_clean_arrow_batches_through_without_copying() -> None:
    import dlt
    import pyarrow as pa

    timestamp = pa.timestamp("us", tz="UTC")
    clean = pa.RecordBatch.from_pydict(
        {
            "id": [1, 2, 3],
            "name": ["a", "b", "c"],
            "updated_at": pa.array([10, 30, 20], timestamp),
            "deleted_at": pa.array([None, None, None], timestamp),
        }
    )
    with_null_cursor = pa.RecordBatch.from_pydict(
        {
            "id": [4, 5, 6],
            "name": ["d", "e", "f"],
            "updated_at": pa.array([None, 40, 5], timestamp),
            "deleted_at": pa.array([None, None, 7], timestamp),
        }
    )
    assert clean.schema.field("updated_at").nullable  # as connectorx declares every field

    # As sources/products/source.py declares the cursor.
    cursor = dlt.sources.incremental("updated_at", primary_key=(), on_cursor_value_missing="include")

    @dlt.resource(name="products", primary_key="id")
    def products(updated_at: Any = cursor) -> Any:
        yield clean
        yield with_null_cursor

    resource = products()
    append_directly(resource)
    first, second = list(resource)
    # dlt's incremental step copied every column of every batch (two filters on the cursor's
    # nullability); now a batch without a NULL cursor and a soft-deleted row is the reader's own.
    assert first.schema.equals(clean.schema, check_metadata=True)
    assert _addresses(first.column("name")) == _addresses(clean.column("name"))
    # A batch with a NULL cursor takes dlt's usual path: the NULL row is kept, the soft-deleted dropped.
    assert sorted(second.column("id").to_pylist()) == [4, 5]
    assert second.schema.field("updated_at").nullable
    incremental = resource.incremental
    assert incremental is not None and incremental.incremental is not None
    assert incremental.incremental.last_value.timestamp() * 1_000_000 == 40  # the cursor saw every row


def _addresses(column: Any) -> list[int | None]:
    array = column.chunk(0) if hasattr(column, "chunks") else column
    return [buffer.address if buffer is not None else None for buffer in array.buffers()]


def test_after_incremental_leaves_a_field_it_did_not_mark_alone() -> None:
    import pyarrow as pa

    field = pa.field("updated_at", pa.timestamp("us", tz="UTC"), nullable=False, metadata={b"k": b"v"})
    batch = pa.RecordBatch.from_arrays(
        [pa.array([1], pa.timestamp("us", tz="UTC"))], schema=pa.schema([field])
    )
    assert after_incremental(batch).schema.equals(batch.schema, check_metadata=True)


def test_a_first_load_read_in_partitions_loses_and_duplicates_nothing(
    catalogue: CatalogueMutator,
    postgres_server: PostgresServer,
    warehouse: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import connectorx
    import psycopg2

    monkeypatch.setenv("SOURCES__PRODUCTS__FIRST_LOAD_PARTITIONS", "3")
    monkeypatch.setenv("SOURCES__PRODUCTS__CHUNK_SIZE", "150")
    calls: list[dict[str, Any]] = []
    read_sql = connectorx.read_sql

    def recorded(conn: Any, query: Any, **kwargs: Any) -> Any:
        calls.append({"query": str(query), **kwargs})
        return read_sql(conn, query, **kwargs)

    monkeypatch.setattr(connectorx, "read_sql", recorded)
    catalogue.soft_delete_products(30)
    # A transaction open during the first load adds a product (the highest id, beyond the ranges
    # connectorx computes) and commits after it: the late-commit guard must hold the cursor back.
    late = psycopg2.connect(postgres_server.dsn.replace("+psycopg2", ""))
    try:
        with late.cursor() as cur:
            cur.execute("select now()")
            started = cur.fetchone()[0]
            cur.execute(
                "insert into products (sku, name, category_id, price, currency, stock) "
                "select 'LATE-1', 'late', min(id), 12.34, 'EUR', 1 from categories returning id"
            )
            late_id = cur.fetchone()[0]
        load()
        assert took_fast_path()
        products_reads = [c for c in calls if "FROM products" in c["query"]]
        assert [(c.get("partition_on"), c.get("partition_num")) for c in products_reads] == [("id", 3)]
        assert late_id not in destination_rows(warehouse)
        assert stored_cursor() <= started
        # Every committed live row once (asserted before the late row commits).
        assert_destination_equals_source(postgres_server.dsn, warehouse, "products")
        late.commit()
    finally:
        late.close()
    calls.clear()
    load()  # an incremental run: one query, not partitioned, and the late row arrives
    assert not took_fast_path()
    assert all("partition_num" not in c for c in calls)
    assert late_id in destination_rows(warehouse)
    assert_destination_equals_source(postgres_server.dsn, warehouse, "products")


def test_only_a_streaming_connectorx_read_is_partitioned() -> None:
    import dlt

    from sources.products.first_load import read_in_partitions

    @dlt.resource(columns={"id": {"data_type": "bigint"}})
    def plain(backend: str = "connectorx", backend_kwargs: Any = None) -> Any:
        yield {"id": 1}

    streaming = {"return_type": "arrow_stream", "batch_size": 10}
    assert read_in_partitions(plain(backend="connectorx", backend_kwargs=streaming), 2)
    assert streaming == {
        "return_type": "arrow_stream",
        "batch_size": 10,
        "partition_on": "id",
        "partition_num": 2,
    }
    # A whole-table Arrow read or another backend is left alone.
    whole: dict[str, Any] = {}
    assert not read_in_partitions(plain(backend="connectorx", backend_kwargs=whole), 2)
    assert not read_in_partitions(plain(backend="pyarrow", backend_kwargs=streaming), 2)
    assert whole == {}
    # An id that is not an integer has no range to split.
    by_text: dict[str, Any] = {"return_type": "arrow_stream"}
    text_id = plain(backend="connectorx", backend_kwargs=by_text)
    text_id.apply_hints(columns={"id": {"data_type": "text"}})
    assert not read_in_partitions(text_id, 2)
    assert by_text == {"return_type": "arrow_stream"}
