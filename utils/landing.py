"""Exactly once into an S3 landing bucket that Snowpipe reads: leave out rows a lost load already landed.

dlt's filesystem destination writes each table's data files as
`{table}/{YYYY}/{MM}/{DD}/{load_id}.{file_id}.parquet`, and Snowpipe ingests every new path once.
A retried package rewrites the same paths with the same bytes, so retries cannot duplicate. What can
is a crash after the upload that also loses the pipeline's working directory (`DLT_DATA_DIR`, e.g. a
worker container that is gone): the next run restores its cursor from the bucket's
`_dlt_pipeline_state/`, written only when a load completes, and extracts the lost load's rows again
under a new load id - and Snowpipe has ingested the lost load's files already.

`leave_out_unfinished_loads` finds the data files of loads newer than the last completed one that no
local package will finish, and filters the rows they hold out of the next extraction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import dlt
import pyarrow.parquet as pq
from dlt.common.destination.exceptions import DestinationUndefinedEntity
from dlt.destinations.impl.filesystem.filesystem import FilesystemClient
from dlt.extract.resource import DltResource

logger = logging.getLogger(__name__)

RowKey = Callable[[dict[str, Any]], Hashable]


def rows_of_unfinished_loads(
    pipeline: dlt.Pipeline, table_name: str, columns: Sequence[str], key: RowKey
) -> set[Hashable]:
    """Keys of the rows in data files of loads that never completed and that no local package owns.

    A load completes when dlt writes its `_dlt_loads/` marker. Data files of a newer load without a
    marker were uploaded by a run that crashed; if its package is not in the working directory, no
    run will finish it, yet Snowpipe may have ingested the files.

    Args:
        pipeline: The pipeline, loading into the filesystem destination.
        table_name: The table whose data files to read.
        columns: The columns `key` needs.
        key: What identifies a row (called on each row of such files, as a dict of `columns`).

    Returns:
        The keys of every row in such files; empty in the normal case.
    """
    client = pipeline.destination_client()
    assert isinstance(client, FilesystemClient)
    # Markers are `<schema>__<load_id>.jsonl`, gzip-compressed with a `.gz` suffix by default.
    completed = {
        name.removesuffix(".gz").removesuffix(".jsonl").rsplit("__", 1)[-1]
        for name in (path.rsplit("/", 1)[-1] for path in _files(client, client.schema.loads_table_name))
    }
    newest = max((_as_number(load_id) for load_id in completed), default=0.0)
    pending = set(pipeline.list_extracted_load_packages()) | set(pipeline.list_normalized_load_packages())
    keys: set[Hashable] = set()
    for path in _files(client, table_name):
        name = path.rsplit("/", 1)[-1]
        if not name.endswith(".parquet"):
            continue
        load_id = name.rsplit(".", 2)[0]  # {load_id}.{file_id}.parquet
        if load_id in completed or load_id in pending or _as_number(load_id) <= newest:
            continue
        with client.fs_client.open(path, "rb") as file:
            table = pq.read_table(file, columns=list(columns))
        keys.update(key(row) for row in table.to_pylist())
    return keys


def leave_out_unfinished_loads(
    pipeline: dlt.Pipeline, resource: DltResource, columns: Sequence[str], key: RowKey
) -> int:
    """Filter the rows that lost loads already put in the bucket out of `resource`'s next extraction.

    Args:
        pipeline: The pipeline, loading into the filesystem destination.
        resource: The resource about to be extracted (its table's files are read).
        columns: The columns `key` needs.
        key: What identifies a row, for rows from the source and rows read back from Parquet alike.

    Returns:
        How many rows were found in the bucket (and will be left out).
    """
    landed = rows_of_unfinished_loads(pipeline, resource.table_name, columns, key)  # type: ignore[arg-type]
    if landed:
        logger.warning(
            "%s: %d rows are already in the bucket from a load that never completed and whose "
            "package is gone; they are left out of this load.",
            pipeline.pipeline_name,
            len(landed),
        )
        resource.add_filter(lambda row: key(row) not in landed)
    return len(landed)


def _as_number(load_id: str) -> float:
    # dlt's load ids are creation timestamps, so they order loads; anything else orders first.
    try:
        return float(load_id)
    except ValueError:
        return 0.0


def _files(client: FilesystemClient, table_name: str) -> list[str]:
    try:
        return list(client.list_table_files(table_name))
    except (DestinationUndefinedEntity, FileNotFoundError):
        return []
