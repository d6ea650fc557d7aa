"""Exchange rates flow: runs the exchange_rates pipeline under Prefect."""

from __future__ import annotations

from prefect import flow, task

from flows.common import RETRIES, RETRY_DELAYS_SECONDS, log_load_summary, retry_unless_permanent
from utils.load_summary import LoadSummary


@task(
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS_SECONDS,
    retry_condition_fn=retry_unless_permanent,
)
def load_exchange_rates() -> LoadSummary:
    """Run the exchange_rates pipeline and report what it loaded.

    A retry is safe: a failed extraction leaves nothing behind, and a load package that failed
    half-way is finished first, rewriting the same object paths, so no row lands twice.
    """
    # Imported here so the flow module stays importable without the pipeline's dependencies being
    # resolved, and to avoid import cycles between layers.
    from pipelines.exchange_rates import run

    summary = LoadSummary.from_load_info(run())
    log_load_summary(summary)
    return summary


@flow(name="exchange_rates", log_prints=True)
def exchange_rates_flow() -> LoadSummary:
    """Append the ECB reference rates published since the last run (all history on the first)."""
    return load_exchange_rates()


if __name__ == "__main__":
    exchange_rates_flow()
