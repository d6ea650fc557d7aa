"""Run, against the Prefect server in PREFECT_API_URL, a flow that succeeds and then one that fails.

Both carry the deployments' `data-pipelines` tag, as their deployment runs would. The HubSpot one
fails after all its task retries (the test's sandbox portal answers 503 to everything); the retry
delays are dropped to keep the test short, the retry count is the real one. Prints the flow run ids
as JSON on the last line.
"""

from __future__ import annotations

import json

from prefect import Task, tags

import flows.currencies
import flows.hubspot


def main() -> None:
    """Run both flows and print their run ids and final states."""
    for module in (flows.currencies, flows.hubspot):
        for obj in vars(module).values():
            if isinstance(obj, Task):
                obj.retry_delay_seconds = [0.0] * (obj.retries or 0)
    with tags("data-pipelines"):
        succeeded = flows.currencies.currencies_flow(return_state=True)
        failed = flows.hubspot.hubspot_flow(return_state=True)
    print(
        json.dumps(
            {
                "succeeded": [str(succeeded.state_details.flow_run_id), succeeded.type.value],
                "failed": [str(failed.state_details.flow_run_id), failed.type.value],
            }
        )
    )


if __name__ == "__main__":
    main()
