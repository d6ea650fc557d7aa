"""Flows that break the task and deployment conventions (fixture for the convention tests)."""

import dlt  # flows must not import dlt: the pipeline layer runs it
from prefect import flow, task

from pipelines.currencies import run  # module-level pipeline import


@task(retries=1, retry_delay_seconds=10)
def too_few_retries():
    return run()


@task(retries=3, retry_delay_seconds=[90, 30, 10])
def shrinking_delays():
    return None


@task(retries=3, retry_delay_seconds=30)
def constant_delay():
    return dlt


@flow(name="bad-flow-without-deployment")
def bad_flow():
    too_few_retries()
