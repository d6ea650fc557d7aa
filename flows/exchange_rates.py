"""Exchange rates flow: runs the exchange_rates pipeline under Prefect."""

from __future__ import annotations

import datetime as dt

from prefect import flow, task

from flows.common import LOAD_TASK_OPTIONS, run_and_report, run_as_command
from utils.load_summary import LoadSummary


@task(**LOAD_TASK_OPTIONS)
def load_exchange_rates(start_date: dt.date | None = None, end_date: dt.date | None = None) -> LoadSummary:
    """Run the exchange_rates pipeline under its lock and publish what it loaded.

    A retry is safe: a failed extraction leaves nothing behind, and a load package that failed
    half-way is finished first, rewriting the same object paths, so no row lands twice.
    """
    # Imported here: the flow module loads without dlt, and layers import downwards only.
    from pipelines.exchange_rates import PIPELINE_NAME, run

    return run_and_report(PIPELINE_NAME, run, start_date=start_date, end_date=end_date)


@flow(name="exchange_rates", log_prints=True)
def exchange_rates_flow(start_date: dt.date | None = None, end_date: dt.date | None = None) -> LoadSummary:
    """Append the ECB reference rates published since the last run (all history on the first).

    Args:
        start_date: With `end_date`, backfill that range instead (the `exchange_rates/backfill`
            deployment): the days the destination lacks are appended, the cursor is left alone.
        end_date: Last day of the backfill (inclusive).
    """
    return load_exchange_rates(start_date, end_date)


if __name__ == "__main__":
    run_as_command(exchange_rates_flow)
