"""The products flow under Prefect, against the sandbox PostgreSQL: increments, full refresh, retries."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from flows.products import products_flow
from pipelines import products as products_pipeline
from sandbox.frankfurter import FrankfurterServer
from sandbox.postgres import CatalogueMutator, PostgresServer
from tests.flows.conftest import LoadFailure
from tests.flows.prefect_api import load_report, run_logs, task_runs
from tests.pipelines.products_helpers import (
    assert_destination_equals_source,
    destination_rows,
    rows_at_latest_cursor,
)
from utils.load_summary import LoadSummary


def test_flow_merges_the_catalogue_and_then_only_the_changes(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, warehouse: Path
) -> None:
    first = products_flow(return_state=True)
    assert first.is_completed()
    summary = first.result()
    assert isinstance(summary, LoadSummary)
    assert set(summary.row_counts) == {"products", "categories"}

    boundary = rows_at_latest_cursor(postgres_server.dsn)
    catalogue.update_products(25)
    second = products_flow(return_state=True).result()
    assert isinstance(second, LoadSummary)
    assert 25 <= second.row_counts["products"] <= 25 + boundary
    assert_destination_equals_source(postgres_server.dsn, warehouse)


def test_full_refresh_reloads_from_scratch_and_leaves_other_pipelines_alone(
    catalogue: CatalogueMutator,
    postgres_server: PostgresServer,
    warehouse: Path,
    frankfurter: FrankfurterServer,
) -> None:
    from pipelines.currencies import run as load_currencies

    currencies = load_currencies()
    assert products_flow(return_state=True).is_completed()
    # The destination drifts from the source behind the cursor's back (a manual delete, a bad fix):
    # incremental runs never look at those rows again.
    with duckdb.connect(str(warehouse)) as con:
        con.execute("delete from products.products where id % 10 = 0")
    assert products_flow(return_state=True).is_completed()
    assert len(destination_rows(warehouse)) < len(products_pipeline_source_ids(postgres_server))

    state = products_flow(full_refresh=True, return_state=True)

    assert state.is_completed()
    summary = state.result()
    assert summary.row_counts["products"] >= len(destination_rows(warehouse))  # everything read again
    assert_destination_equals_source(postgres_server.dsn, warehouse, "products")
    assert_destination_equals_source(postgres_server.dsn, warehouse, "categories")
    cursor = products_pipeline.pipeline().state["sources"]["products"]["resources"]["products"]
    assert cursor["incremental"]["updated_at"]["last_value"] == latest_updated_at(postgres_server)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        kept = con.execute("select distinct _dlt_load_id from currencies.currencies").fetchall()
    assert kept == [(currencies.load_ids[0],)]  # the currencies table was not reloaded or dropped


@pytest.mark.usefixtures("no_retry_delay")
def test_a_retry_after_a_failure_mid_load_finishes_the_package_instead_of_extracting_again(
    catalogue: CatalogueMutator,
    postgres_server: PostgresServer,
    warehouse: Path,
    load_fails_once: LoadFailure,
) -> None:
    state = products_flow(return_state=True)

    assert state.is_completed()
    [run] = task_runs(state.state_details.flow_run_id)
    assert run.run_count == 2
    [pending] = load_fails_once.failed_load_ids
    summary = state.result()
    # The retry loaded the failed try's package, then extracted only what was new since: the rows
    # at the cursor (read again by the `>=` boundary), not the catalogue a second time.
    assert summary.load_ids != [pending]
    assert summary.row_counts.get("products", 0) <= rows_at_latest_cursor(postgres_server.dsn)
    assert_destination_equals_source(postgres_server.dsn, warehouse)  # no duplicates, nothing lost
    with duckdb.connect(str(warehouse), read_only=True) as con:
        loads = con.execute("select load_id from products._dlt_loads where status = 0").fetchall()
        in_table = con.execute("select count(*) from products.products").fetchone()
    assert (pending,) in loads
    # The report shows both loads: the finished package (with the failed try's counts) and the new one.
    _, description, rows = load_report(state.state_details.flow_run_id)
    assert description is not None and pending in description
    reported = {(r["load id"], r["table"]): r for r in rows}
    assert {load_id for load_id, _ in reported} == {pending, *summary.load_ids}
    first = reported[(pending, "products")]
    assert first["rows loaded"] >= first["rows in table"] > 1000  # soft-deleted rows load, then go
    assert in_table == (first["rows in table"],)
    logs = run_logs(state.state_details.flow_run_id)
    assert any("finishing 1 load package(s) left by an earlier try" in line for line in logs), logs


@pytest.mark.usefixtures("no_retry_delay")
def test_a_full_refresh_retried_after_its_package_failed_to_load_does_not_reload_twice(
    catalogue: CatalogueMutator,
    postgres_server: PostgresServer,
    warehouse: Path,
    load_fails_once: LoadFailure,
) -> None:
    assert products_flow(return_state=True).is_completed()  # the failure is spent on this first load
    catalogue.update_products(30)
    load_fails_once.failed_load_ids.clear()

    state = products_flow(full_refresh=True, return_state=True)

    assert state.is_completed()
    [run] = task_runs(state.state_details.flow_run_id)
    assert run.run_count == 2
    logs = run_logs(state.state_details.flow_run_id)
    assert any("the pending package is the full refresh" in line for line in logs), logs
    summary = state.result()
    assert summary.row_counts.get("products", 0) <= rows_at_latest_cursor(postgres_server.dsn)
    assert_destination_equals_source(postgres_server.dsn, warehouse)


@pytest.mark.usefixtures("no_retry_delay")
def test_schema_drift_fails_at_once_without_retries(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, warehouse: Path
) -> None:
    assert products_flow(return_state=True).is_completed()
    before = destination_rows(warehouse)
    catalogue.alter_column_type("products", "price", "text", using_sql="price::text || ' EUR'")
    catalogue.hard_set_updated_at(sorted(before)[:20], datetime.now(UTC))

    state = products_flow(return_state=True)

    assert state.is_failed()
    [run] = task_runs(state.state_details.flow_run_id)
    assert run.run_count == 1
    with pytest.raises(Exception, match=r"price.*breaks the schema contract"):
        state.result()
    assert destination_rows(warehouse) == before


@pytest.mark.usefixtures("no_retry_delay")
def test_a_wrong_database_password_fails_at_once_without_retries(
    catalogue: CatalogueMutator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__PRODUCTS__CREDENTIALS__PASSWORD", "not-the-password-xyz")

    state = products_flow(return_state=True)

    assert state.is_failed()
    [run] = task_runs(state.state_details.flow_run_id)
    assert run.run_count == 1
    with pytest.raises(Exception, match=r"sources\.products\.credentials") as caught:
        state.result()
    assert "not-the-password-xyz" not in str(caught.value)


def products_pipeline_source_ids(server: PostgresServer) -> set[int]:
    from tests.pipelines.products_helpers import source_rows

    return set(source_rows(server.dsn))


def latest_updated_at(server: PostgresServer) -> datetime:
    import psycopg2

    with psycopg2.connect(server.dsn.replace("+psycopg2", "")) as conn, conn.cursor() as cur:
        cur.execute("select max(updated_at) from products")
        row = cur.fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def test_the_load_artifact_reports_rows_removed_by_the_key_reconciliation(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg2

    monkeypatch.setenv("SOURCES__PRODUCTS__RECONCILE_EVERY_RUNS", "1")
    assert products_flow(return_state=True).is_completed()
    with psycopg2.connect(postgres_server.dsn.replace("+psycopg2", "")) as conn, conn.cursor() as cur:
        cur.execute(
            "delete from products where id in (select id from products where deleted_at is null limit 3)"
        )
    conn.close()
    state = products_flow(return_state=True)
    assert state.is_completed()
    assert state.result().reconciled_deletes == {"categories": 0, "products": 3}
    _, description, _ = load_report(state.state_details.flow_run_id)
    assert description is not None
    assert (
        "Key reconciliation ran: rows deleted upstream removed from the destination: `categories` 0, `products` 3."
        in description
    )
