"""Currencies pipeline: the currency list into the `CURRENCIES` schema of the warehouse."""

from __future__ import annotations

import dlt
from dlt.common.pipeline import LoadInfo

from sources.currencies import currencies_source
from utils.destinations import make_pipeline, run_pipeline

PIPELINE_NAME = "currencies"
# dlt upper-cases identifiers on Snowflake, so this is the CURRENCIES schema there.
DATASET_NAME = "currencies"


def pipeline() -> dlt.Pipeline:
    """Build the currencies pipeline (Snowflake, or `DLT__DESTINATION`)."""
    return make_pipeline(PIPELINE_NAME, DATASET_NAME)


def run() -> LoadInfo:
    """Extract the currency list and replace the `currencies` table.

    Returns:
        dlt's load info for the run.
    """
    return run_pipeline(pipeline(), currencies_source)
