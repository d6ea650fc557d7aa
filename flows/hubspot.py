"""HubSpot flow: runs the HubSpot contacts pipeline under Prefect."""

from __future__ import annotations

from prefect import flow, task

from flows.common import LOAD_TASK_OPTIONS, run_and_report, run_as_command
from utils.load_summary import LoadSummary


@task(**LOAD_TASK_OPTIONS)
def load_hubspot_contacts(full_refresh: bool = False) -> LoadSummary:
    """Run the HubSpot pipeline under its lock and publish what it loaded."""
    # Imported here: the flow module loads without dlt, and layers import downwards only.
    from pipelines.hubspot import PIPELINE_NAME, run

    return run_and_report(PIPELINE_NAME, run, full_refresh=full_refresh)


@flow(name="hubspot", log_prints=True)
def hubspot_flow(full_refresh: bool = False) -> LoadSummary:
    """Load HubSpot contacts changed since the last run and remove archived ones.

    Args:
        full_refresh: Drop the contacts table and cursors and list every contact again (the
            `hubspot/full-refresh` deployment). Other pipelines' tables are not touched.
    """
    return load_hubspot_contacts(full_refresh)


if __name__ == "__main__":
    run_as_command(hubspot_flow)
