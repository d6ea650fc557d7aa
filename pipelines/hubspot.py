"""HubSpot pipeline: CRM contacts into the `HUBSPOT` schema of the warehouse, merged on `id`."""

from __future__ import annotations

import dlt
from dlt.common.pipeline import LoadInfo

from sources.hubspot import hubspot_source
from utils.destinations import make_pipeline, run_pipeline

PIPELINE_NAME = "hubspot"
# dlt upper-cases identifiers on Snowflake, so this is the HUBSPOT schema there.
DATASET_NAME = "hubspot"
# Contacts are wide (one column per property, hundreds in a real portal): Parquet loads each file
# with one COPY, where INSERT statements took about three times as long end to end on DuckDB.
LOADER_FILE_FORMAT = "parquet"


def pipeline() -> dlt.Pipeline:
    """Build the HubSpot pipeline (Snowflake, or `DLT__DESTINATION`)."""
    return make_pipeline(PIPELINE_NAME, DATASET_NAME)


def run() -> LoadInfo:
    """Load contacts modified since the last run (all of them on the first) and apply deletions.

    Returns:
        dlt's load info for the run.
    """
    hubspot = pipeline()
    discard_committed_extracts(hubspot)
    return run_pipeline(hubspot, hubspot_source, loader_file_format=LOADER_FILE_FORMAT)


def discard_committed_extracts(pipeline: dlt.Pipeline) -> list[str]:
    """Remove extracted packages that a killed run had already normalised.

    dlt's normalize step commits a package by renaming its normalised copy into `load/normalized`
    and then deleting the extracted copy. A process killed between the two (SIGKILL, OOM, a lost
    machine - measured here with SIGKILL) leaves the package in both places, and every later run
    fails in normalize ("Directory not empty") because it normalises the package again. The
    normalised copy is complete (the rename is atomic), so the extracted copy is the one to drop.

    Args:
        pipeline: The pipeline whose working directory to repair.

    Returns:
        The load ids of the extracted copies removed.
    """
    try:
        extracted = pipeline._get_normalize_storage().extracted_packages
        load_storage = pipeline._get_load_storage()
        committed = {*load_storage.list_normalized_packages(), *load_storage.list_loaded_packages()}
        pending = extracted.list_packages()
    except FileNotFoundError:  # a pipeline that never ran has no storage folders yet
        return []
    stale = [load_id for load_id in pending if load_id in committed]
    for load_id in stale:
        extracted.delete_package(load_id)
    return stale
