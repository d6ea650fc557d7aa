"""Key reconciliation: remove from the destination the rows deleted physically upstream.

The incremental extract sees changes, and soft deletes are changes (`deleted_at` set); a row removed
with `DELETE` leaves nothing behind to see. So every `reconcile_every_runs` runs, after the load, the
pipeline compares the primary keys of each table on both sides - ids only, in ascending chunks of
`reconcile_chunk_size` read by keyset pagination on the primary key index upstream, and the same id
ranges in the destination - and deletes the destination rows whose id no longer exists upstream.

This module is the upstream half and the comparison; it names no destination. The destination half
(`DestinationKeys`) is given by the pipeline (`utils/key_reconciliation.py` implements it with dlt's
SQL client, for DuckDB and Snowflake alike).

Safety: the comparison runs under the pipeline's lock (no load runs meanwhile), so a row in the
destination and not upstream was deleted upstream after it was loaded - or upstream is wrong (an
empty table, the wrong database). When more than `reconcile_max_delete_fraction` of a table's
destination rows would go, nothing is deleted and the run fails with a permanent error instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import dlt
import sqlalchemy as sa
from dlt.common.configuration import with_config
from dlt.common.configuration.specs import ConnectionStringCredentials

from sources.products.settings import (
    DEFAULT_TABLES,
    PRIMARY_KEY,
    RECONCILE_CHUNK_SIZE,
    RECONCILE_EVERY_RUNS,
    RECONCILE_MAX_DELETE_FRACTION,
)
from utils.credentials import SqlDatabaseCredentials
from utils.errors import PermanentPipelineError


class ReconciliationRefusedError(PermanentPipelineError):
    """The reconciliation would delete implausibly many rows, so it deleted none."""


class DestinationKeys(Protocol):
    """The destination's side of a key reconciliation."""

    def keys(self, table: str, key: str, after: int | None, upto: int | None) -> list[int]:
        """Keys of `table` with `after < key <= upto` (either bound may be open), ascending."""

    def delete(self, table: str, key: str, keys: Sequence[int]) -> None:
        """Delete the rows of `table` whose key is in `keys`."""


@dataclass(frozen=True)
class ReconciliationSettings:
    """Configuration of the key reconciliation (section `sources.products`).

    Attributes:
        credentials: The source database.
        tables: Tables to reconcile (the extracted ones).
        every_runs: Reconcile every this many runs; 0 switches it off.
        chunk_size: Ids per chunk on each side.
        max_delete_fraction: Refuse to delete more than this fraction of a table's rows.
    """

    credentials: ConnectionStringCredentials
    tables: tuple[str, ...]
    every_runs: int
    chunk_size: int
    max_delete_fraction: float


@with_config(sections=("sources", "products"))
def reconciliation_settings(
    credentials: SqlDatabaseCredentials = dlt.secrets.value,
    tables: Sequence[str] = DEFAULT_TABLES,
    reconcile_every_runs: int = RECONCILE_EVERY_RUNS,
    reconcile_chunk_size: int = RECONCILE_CHUNK_SIZE,
    reconcile_max_delete_fraction: float = RECONCILE_MAX_DELETE_FRACTION,
) -> ReconciliationSettings:
    """Resolve the reconciliation's settings through dlt's configuration (`sources.products.*`).

    Args:
        credentials: `sources.products.credentials`.
        tables: `sources.products.tables`.
        reconcile_every_runs: `sources.products.reconcile_every_runs`.
        reconcile_chunk_size: `sources.products.reconcile_chunk_size`.
        reconcile_max_delete_fraction: `sources.products.reconcile_max_delete_fraction`.

    Returns:
        The settings.
    """
    return ReconciliationSettings(
        credentials=credentials,
        tables=tuple(tables),
        every_runs=int(reconcile_every_runs),
        chunk_size=int(reconcile_chunk_size),
        max_delete_fraction=float(reconcile_max_delete_fraction),
    )


@dataclass(frozen=True)
class TableReconciliation:
    """What one table's reconciliation found.

    Attributes:
        table: The table.
        source_keys: Ids upstream.
        destination_keys: Ids in the destination before the deletion.
        deleted: Destination rows deleted (gone upstream).
        missing: Ids upstream and not in the destination (soft-deleted rows, rows not loaded yet).
        seconds: Wall time.
    """

    table: str
    source_keys: int
    destination_keys: int
    deleted: int
    missing: int
    seconds: float


def source_key_chunks(engine: sa.Engine, table: str, key: str, chunk_size: int) -> Iterator[list[int]]:
    """Yield the table's keys upstream in ascending chunks (keyset pagination on the key's index).

    Args:
        engine: The source database.
        table: Table name.
        key: Integer primary key column.
        chunk_size: Keys per chunk.

    Yields:
        Non-empty ascending lists of keys.
    """
    ident = sa.table(table, sa.column(key))
    column = ident.c[key]
    after: int | None = None
    with engine.connect() as conn:
        while True:
            query = sa.select(column).order_by(column).limit(chunk_size)
            if after is not None:
                query = query.where(column > after)
            chunk = [int(value) for value in conn.execute(query).scalars()]
            if not chunk:
                return
            yield chunk
            after = chunk[-1]
            if len(chunk) < chunk_size:
                return


def reconcile_table(
    engine: sa.Engine,
    destination: DestinationKeys,
    table: str,
    *,
    key: str = PRIMARY_KEY,
    chunk_size: int = RECONCILE_CHUNK_SIZE,
    max_delete_fraction: float = RECONCILE_MAX_DELETE_FRACTION,
) -> TableReconciliation:
    """Delete from the destination the rows of `table` whose key no longer exists upstream.

    Upstream keys come in ascending chunks; for each chunk the destination's keys in the same range
    (after the previous chunk's last key, up to this chunk's last) are compared, then those above
    the last upstream key. Only ids travel.

    Args:
        engine: The source database.
        destination: The destination's keys.
        table: Table name (the same on both sides).
        key: Integer primary key column.
        chunk_size: Keys per chunk.
        max_delete_fraction: Refuse (delete nothing) when more than this fraction would go.

    Returns:
        What was found and deleted.

    Raises:
        ReconciliationRefusedError: Implausibly many rows would be deleted.
    """
    started = time.monotonic()
    extra: list[int] = []
    source_count = destination_count = missing = 0
    after: int | None = None
    for chunk in source_key_chunks(engine, table, key, chunk_size):
        theirs = destination.keys(table, key, after, chunk[-1])
        ours = set(chunk)
        present = set(theirs)
        extra.extend(k for k in theirs if k not in ours)
        missing += len(ours - present)
        source_count += len(chunk)
        destination_count += len(theirs)
        after = chunk[-1]
    tail = destination.keys(table, key, after, None)
    extra.extend(tail)
    destination_count += len(tail)
    if extra and len(extra) > max_delete_fraction * destination_count:
        raise ReconciliationRefusedError(
            f"products.{table}: the key reconciliation would delete {len(extra)} of the {destination_count} "
            f"rows in the destination ({source_count} ids upstream), more than "
            f"sources.products.reconcile_max_delete_fraction = {max_delete_fraction}. Nothing was deleted. "
            "Check that sources.products.credentials points at the right database and the table is "
            "complete; if the deletions are real, raise the fraction for one run."
        )
    for start in range(0, len(extra), chunk_size):
        destination.delete(table, key, extra[start : start + chunk_size])
    return TableReconciliation(
        table=table,
        source_keys=source_count,
        destination_keys=destination_count,
        deleted=len(extra),
        missing=missing,
        seconds=time.monotonic() - started,
    )
