"""Products flow: runs the products pipeline under Prefect."""

from __future__ import annotations

from prefect import flow, task

from flows.common import RETRIES, RETRY_DELAYS_SECONDS, retry_unless_permanent, run_and_report
from utils.load_summary import LoadSummary


@task(
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS_SECONDS,
    retry_condition_fn=retry_unless_permanent,
)
def load_products() -> LoadSummary:
    """Run the products pipeline and report what it loaded."""
    from pipelines.products import run

    return run_and_report(run)


@flow(name="products", log_prints=True)
def products_flow() -> LoadSummary:
    """Merge what changed in the product catalogue since the last run."""
    return load_products()


if __name__ == "__main__":
    products_flow()
