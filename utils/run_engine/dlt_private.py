"""The only module that touches dlt's private API; `tests/utils/test_run_engine.py` breaks if it changes.

dlt 1.31 has no public way to repair a package a killed run left both extracted and normalised, or
to read the state of a package that is extracted but not yet normalised. Everything else the run
engine needs goes through dlt's public API.
"""

from __future__ import annotations

from typing import Any

import dlt


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


def extracted_package_state(pipeline: dlt.Pipeline, load_id: str) -> Any:
    """The package state (dropped and truncated tables...) of a package that is extracted only.

    `pipeline.get_load_package_state` reads normalised packages only.
    """
    return pipeline._get_normalize_storage().extracted_packages.get_load_package_state(load_id)
