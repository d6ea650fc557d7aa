"""A pipeline that imports Prefect (fixture for the convention tests)."""

import os

from prefect import flow


def run():
    return os.getenv("DESTINATION"), flow
