"""A source that breaks every source convention (fixture for the convention tests)."""

import os

import dlt
from prefect import get_run_logger  # sources must not import prefect

from pipelines.bad_pipeline import run  # sources must not import pipelines

API_TOKEN = "hunter2-not-a-placeholder"  # a credential literal


@dlt.source  # no section=
def bad_source():
    return no_disposition(), merge_without_key()


@dlt.resource  # no write_disposition
def no_disposition():
    yield {"token": os.environ["TOKEN"]}  # reads the environment directly


@dlt.resource(write_disposition="merge")  # merge without primary_key
def merge_without_key():
    yield from dlt.pipeline(destination="duckdb").run([])  # names a destination
