"""HubSpot pipeline: CRM contacts into the `HUBSPOT` schema of the warehouse, merged on `id`."""

from __future__ import annotations

import dlt

from sources.hubspot import hubspot_source
from utils.destinations import make_pipeline
from utils.load_summary import LoadSummary
from utils.run_engine import run_pipeline

PIPELINE_NAME = "hubspot"
# dlt upper-cases identifiers on Snowflake, so this is the HUBSPOT schema there.
DATASET_NAME = "hubspot"
# Contacts are wide (one column per property, hundreds in a real portal): Parquet loads each file
# with one COPY, where INSERT statements took about three times as long end to end on DuckDB.
LOADER_FILE_FORMAT = "parquet"


def pipeline() -> dlt.Pipeline:
    """Build the HubSpot pipeline (Snowflake, or `DLT__DESTINATION`)."""
    return make_pipeline(PIPELINE_NAME, DATASET_NAME)


# dlt's refresh mode for a full reload: drop the source's tables, its whole state (the search
# cursor and the archived-pass time) and its stored schema. Only this pipeline's dataset is touched.
FULL_REFRESH = "drop_sources"


def run(full_refresh: bool = False) -> LoadSummary:
    """Load contacts modified since the last run (all of them on the first) and apply deletions.

    Args:
        full_refresh: Drop the `contacts` table and the cursors and list every contact again (after
            a property changed type, or to repair the destination). The table is dropped when the
            load step starts and refilled by it, so readers see it empty meanwhile.

    Returns:
        The load report (rows per table and load package, table sizes, duration).
    """
    return run_pipeline(
        pipeline(),
        hubspot_source,
        loader_file_format=LOADER_FILE_FORMAT,
        refresh=FULL_REFRESH if full_refresh else None,
    )
