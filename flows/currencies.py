"""Currencies flow: runs the currencies pipeline under Prefect."""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.common import RETRIES, RETRY_DELAYS_SECONDS, retry_unless_permanent, run_and_report
from utils.load_summary import LoadSummary


@task(
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS_SECONDS,
    retry_condition_fn=retry_unless_permanent,
    # A load must run every time it is called: never skipped as cached, its result kept in memory only.
    cache_policy=NO_CACHE,
    persist_result=False,
)
def load_currencies() -> LoadSummary:
    """Run the currencies pipeline under its lock and publish what it loaded."""
    # Imported here: the flow module loads without dlt, and layers import downwards only.
    from pipelines.currencies import PIPELINE_NAME, run

    return run_and_report(PIPELINE_NAME, run)


@flow(name="currencies", log_prints=True)
def currencies_flow() -> LoadSummary:
    """Load the currency list (reference data, replaced as a whole)."""
    return load_currencies()


if __name__ == "__main__":
    currencies_flow()
