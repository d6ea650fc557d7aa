"""Products flow: runs the products pipeline under Prefect."""

from __future__ import annotations

from prefect import flow, task

from flows.common import LOAD_TASK_OPTIONS, run_and_report, run_as_command
from utils.load_summary import LoadSummary


@task(**LOAD_TASK_OPTIONS)
def load_products(full_refresh: bool = False) -> LoadSummary:
    """Run the products pipeline under its lock and publish what it loaded."""
    # Imported here: the flow module loads without dlt, and layers import downwards only.
    from pipelines.products import PIPELINE_NAME, run

    return run_and_report(PIPELINE_NAME, run, full_refresh=full_refresh)


@flow(name="products", log_prints=True)
def products_flow(full_refresh: bool = False) -> LoadSummary:
    """Merge what changed in the product catalogue since the last run.

    Args:
        full_refresh: Drop the products tables and cursors and reload the whole catalogue (the
            `products/full-refresh` deployment). Other pipelines' tables are not touched.
    """
    return load_products(full_refresh)


if __name__ == "__main__":
    run_as_command(products_flow)
