"""Products pipeline: the PostgreSQL catalogue merged into the `PRODUCTS` schema of the warehouse."""

from __future__ import annotations

import dlt
from dlt.common.pipeline import LoadInfo

from sources.products import products_source
from utils.destinations import make_pipeline, run_pipeline

PIPELINE_NAME = "products"
# dlt upper-cases identifiers on Snowflake, so this is the PRODUCTS schema there.
DATASET_NAME = "products"


def pipeline() -> dlt.Pipeline:
    """Build the products pipeline (Snowflake, or `DLT__DESTINATION`)."""
    return make_pipeline(PIPELINE_NAME, DATASET_NAME)


def run() -> LoadInfo:
    """Extract what changed in the catalogue since the last run and merge it.

    Returns:
        dlt's load info for the run.
    """
    return run_pipeline(pipeline(), products_source)
