"""Products pipeline: the PostgreSQL catalogue merged into the `PRODUCTS` schema of the warehouse."""

from __future__ import annotations

from dataclasses import replace

import dlt
from dlt.sources import DltSource

from sources.products import first_load, products_source
from sources.products.reconcile import reconcile_table, reconciliation_settings
from sources.products.source import connect
from utils.destinations import make_pipeline
from utils.key_reconciliation import SqlClientKeys, reconcile_if_due
from utils.load_summary import LoadSummary
from utils.run_engine import run_pipeline, table_row_counts

PIPELINE_NAME = "products"
# dlt upper-cases identifiers on Snowflake, so this is the PRODUCTS schema there.
DATASET_NAME = "products"


def pipeline() -> dlt.Pipeline:
    """Build the products pipeline (Snowflake, or `DLT__DESTINATION`)."""
    return make_pipeline(PIPELINE_NAME, DATASET_NAME)


# dlt's refresh mode for a full reload: drop the source's tables and its whole state (incremental
# cursors included) and its stored schema, so a changed column type is created afresh too. Only
# this pipeline's schema and dataset are touched.
FULL_REFRESH = "drop_sources"


def run(full_refresh: bool = False, reconcile: bool = False) -> LoadSummary:
    """Extract what changed in the catalogue since the last run and merge it.

    Every `sources.products.reconcile_every_runs` runs (and when `reconcile` is set) the run then
    compares the ids of each table on both sides and deletes the rows deleted physically upstream
    (sources/products/reconcile.py); the report's `reconciled_deletes` gives the count per table.
    A first load or full refresh that copied every table whole counts as one (nothing to compare).

    Args:
        full_refresh: Drop the `products` and `categories` tables and the cursors, and load the whole
            catalogue again (after a schema drift, or to repair the destination). The tables are
            dropped when the load step starts and refilled by it, so readers see them empty meanwhile.
        reconcile: Run the key reconciliation now, whatever the count of runs.

    Returns:
        The load report (rows per table and load package, table sizes, duration, reconciliation).
    """
    products = pipeline()
    first_load_partitions = dlt.config.get(first_load.PARTITIONS_KEY, int) or first_load.PARTITIONS
    # Tables the run's main source appends whole (the engine builds it first; a later build only
    # refills tables dropped behind dlt's back).
    appended_whole: list[set[str]] = []

    def source(refresh: bool) -> DltSource:
        # First loads and full refreshes append into the empty tables instead of merging
        # (sources/products/first_load.py); every other run merges. `refresh` is the engine's
        # decision: a requested refresh whose package an earlier try left pending is not repeated.
        data = products_source()
        chosen = first_load.prepare(products, data, refresh=refresh, partitions=first_load_partitions)
        appended_whole.append({str(data.resources[name].table_name) for name in chosen})
        return data

    report = run_pipeline(products, source, refresh=FULL_REFRESH if full_refresh else None)
    settings = reconciliation_settings()

    def reconcile_keys() -> dict[str, int]:
        engine = connect(settings.credentials)
        try:
            with SqlClientKeys(products) as destination:
                return {
                    table: reconcile_table(
                        engine,
                        destination,
                        table,
                        chunk_size=settings.chunk_size,
                        max_delete_fraction=settings.max_delete_fraction,
                    ).deleted
                    for table in settings.tables
                }
        finally:
            engine.dispose()

    # A first load or full refresh that copied every reconciled table whole counts as a reconciliation.
    copied_whole = bool(appended_whole) and set(settings.tables) <= appended_whole[0]
    deleted = reconcile_if_due(
        products, settings.every_runs, reconcile_keys, force=reconcile, copied_whole=copied_whole
    )
    if deleted is None and copied_whole and settings.every_runs > 0 and not reconcile:
        note = (
            f"Key reconciliation counted as done: {', '.join(settings.tables)} were copied whole; "
            f"the next one is due in {settings.every_runs} run(s)."
        )
        report = replace(report, notes=[*report.notes, note])
    if deleted:  # the report counted the tables before the reconciliation deleted rows
        recounted = table_row_counts(products, sorted(deleted), report.destination)
        return replace(
            report, reconciled_deletes=deleted, rows_in_table={**report.rows_in_table, **recounted}
        )
    return replace(report, reconciled_deletes=deleted)
