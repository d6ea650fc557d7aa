"""The products flow under Prefect, against the sandbox PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from flows.products import products_flow
from sandbox.postgres import CatalogueMutator, PostgresServer
from tests.pipelines.products_helpers import assert_destination_equals_source, rows_at_latest_cursor
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
