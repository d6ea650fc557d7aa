"""The only module that touches dlt's private API; `tests/utils/test_run_engine.py` breaks if it changes.

dlt 1.31 has no public way to repair a package a killed run left both extracted and normalised, to
remove what a stopped extraction or normalisation leaves behind, or to read the state of a package
that is extracted but not yet normalised. Everything else the run engine needs goes through dlt's
public API.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import dlt
from dlt.common.storages import NormalizeStorage

# The temporary folder of one extraction: `normalize/<uniq_id(8)>/`, 16 hex digits (dlt.extract.storage).
_EXTRACT_FOLDER = re.compile(r"[0-9a-f]{16}")


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


def discard_interrupted_leftovers(pipeline: dlt.Pipeline) -> list[str]:
    """Remove what a stopped or failed extraction or normalisation left that no run can use.

    * `normalize/<16 hex digits>/`: an extraction's temporary folder. dlt renames the packages in
      it into `normalize/extracted` when the extraction completes; one that stopped (Ctrl-C,
      SIGTERM, a crash) leaves the folder with its half-written files for good, and its cursors
      were never saved, so the next run extracts the same data again.
    * `load/new/<load id>/` whose extracted package is gone: normalize writes a package there
      and renames it into `load/normalized` when it is complete; when it stops, the extracted
      package stays and the next normalisation rewrites the folder from scratch. If the extracted
      package was dropped instead (`abort_packages` after a failed normalisation, `dlt pipeline
      ... drop-pending-packages`) nothing ever finishes or removes it, and `dlt pipeline info`
      does not list it: measured here, 5 MB for the exchange_rates history.

    Neither is pending data: nothing in them is ever loaded, and a package still extracted keeps
    its `load/new` copy (normalize rewrites it). Runs of one pipeline never overlap (flows/lock.py),
    so no other process is writing them.

    Args:
        pipeline: The pipeline whose working directory to clean.

    Returns:
        What was removed, as paths relative to the working directory.
    """
    root = Path(pipeline.working_dir)
    normalize = root / "normalize"
    removed = [
        folder
        for folder in (normalize.iterdir() if normalize.is_dir() else [])
        if folder.is_dir() and _EXTRACT_FOLDER.fullmatch(folder.name)
    ]
    new = root / "load" / "new"
    extracted = normalize / NormalizeStorage.EXTRACTED_FOLDER
    removed += [
        package
        for package in (new.iterdir() if new.is_dir() else [])
        if package.is_dir() and not (extracted / package.name).exists()
    ]
    for folder in removed:
        shutil.rmtree(folder)
    return [str(folder.relative_to(root)) for folder in removed]


def extracted_package_state(pipeline: dlt.Pipeline, load_id: str) -> Any:
    """The package state (dropped and truncated tables...) of a package that is extracted only.

    `pipeline.get_load_package_state` reads normalised packages only.
    """
    return pipeline._get_normalize_storage().extracted_packages.get_load_package_state(load_id)
