"""Currencies flow: runs the currencies pipeline under Prefect."""

from __future__ import annotations

from prefect import flow, task

from flows.common import LOAD_TASK_OPTIONS, run_and_report, run_as_command
from utils.load_summary import LoadSummary


@task(**LOAD_TASK_OPTIONS)
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
    run_as_command(currencies_flow)
