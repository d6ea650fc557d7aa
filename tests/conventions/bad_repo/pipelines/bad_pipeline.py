"""A pipeline that imports Prefect and a flow, and reads the environment (fixture for the convention tests)."""

import os

from prefect import flow

from flows.bad_flow import bad_flow  # pipelines must not import flows


def run():
    return os.getenv("DESTINATION"), flow, bad_flow
