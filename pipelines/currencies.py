"""Currencies pipeline: the currency list into the `CURRENCIES` schema of the warehouse."""

from __future__ import annotations

import dlt

from sources.currencies import currencies_source
from utils.destinations import make_pipeline
from utils.load_summary import LoadSummary
from utils.run_engine import run_pipeline

PIPELINE_NAME = "currencies"
# dlt upper-cases identifiers on Snowflake, so this is the CURRENCIES schema there.
DATASET_NAME = "currencies"


def pipeline() -> dlt.Pipeline:
    """Build the currencies pipeline (Snowflake, or `DLT__DESTINATION`)."""
    return make_pipeline(PIPELINE_NAME, DATASET_NAME)


def run() -> LoadSummary:
    """Extract the currency list and replace the `currencies` table.

    Returns:
        The load report (rows per table and load package, table sizes, duration).
    """
    return run_pipeline(pipeline(), currencies_source)
