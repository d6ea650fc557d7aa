"""Products: the product catalogue from the operational PostgreSQL database, incrementally.

Each table is read with dlt's `sql_table` (connectorx backend: rows are read in Rust straight into
Arrow batches, streamed, and skip dlt's row-by-row normalisation), filtered on `updated_at` so a run reads only what changed,
and merged into the destination on `id`, so re-reading a row never duplicates it. Rows soft-deleted
upstream (`deleted_at` set) are deleted from the destination.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dlt
import sqlalchemy as sa
from dlt.common.configuration.specs import ConnectionStringCredentials
from dlt.sources import DltResource
from dlt.sources.sql_database import sql_table

from sources.products.late_commits import AfterIncremental, LateCommitGuard
from sources.products.settings import (
    BACKEND,
    CHUNK_SIZE,
    CONNECT_TIMEOUT_SECONDS,
    CURSOR_COLUMN,
    DEFAULT_TABLES,
    PRIMARY_KEY,
    SCHEMA_CONTRACT,
    SOFT_DELETE_COLUMN,
)
from utils.credentials import SqlDatabaseCredentials
from utils.sql_connection import connect_postgres
from utils.sql_types import guarded_loader_class, plan_table, reflection_type_adapter

CREDENTIALS_KEY = "sources.products.credentials"


@dlt.source(section="products", name="products", schema_contract=SCHEMA_CONTRACT)
def products_source(
    credentials: SqlDatabaseCredentials = dlt.secrets.value,
    tables: Sequence[str] = DEFAULT_TABLES,
    chunk_size: int = CHUNK_SIZE,
    backend: str = BACKEND,
    late_commit_guard: bool = True,
) -> list[DltResource]:
    """Extract the catalogue tables from PostgreSQL.

    Args:
        credentials: The database connection (`sources.products.credentials`).
        tables: Tables to extract (`sources.products.tables`); each needs `id`, `updated_at` and
            `deleted_at` columns.
        chunk_size: Rows per Arrow batch.
        backend: dlt `sql_table` backend (`sources.products.backend`); see settings.BACKEND.
        late_commit_guard: Cap each stored cursor at the start of the oldest open transaction, so a
            change committed late is never skipped (`sources.products.late_commit_guard`; see
            late_commits.py). Needs `pg_read_all_stats`; switching it off risks losing such changes.

    Returns:
        One incremental merge resource per table.

    Raises:
        ConfigurationError: The credentials are missing or rejected by the server.
        UpstreamUnavailableError: The server cannot be reached.
        UnsupportedColumnTypeError: A column's type cannot be loaded exactly (nothing is read).
    """
    engine = connect(credentials)
    # Every table reflected at once - one catalogue query per kind of information instead of one
    # per kind and table; `sql_table` takes each table from this metadata instead of reflecting it.
    metadata = sa.MetaData()
    metadata.reflect(engine, only=list(tables), views=True, resolve_fks=False)
    return [
        catalogue_table(
            engine,
            name,
            chunk_size=chunk_size,
            backend=backend,
            late_commit_guard=late_commit_guard,
            metadata=metadata,
        )
        for name in tables
    ]


def catalogue_table(
    engine: sa.Engine,
    table: str,
    *,
    chunk_size: int,
    backend: Any,
    late_commit_guard: bool = True,
    metadata: sa.MetaData | None = None,
) -> DltResource:
    """One table as an incremental merge resource.

    Args:
        engine: Connected SQLAlchemy engine.
        table: Table name.
        chunk_size: Rows per Arrow batch.
        backend: dlt `sql_table` backend.
        late_commit_guard: Whether to cap the stored cursor at the horizon (late_commits.py).
        metadata: Metadata the table is already reflected in (else `sql_table` reflects it).

    Returns:
        The resource, named after the table.
    """
    # Every column's type decides how it travels (utils/sql_types.py): read as is, cast
    # server-side, or - before anything is read - refused. Panics of the native reader become
    # permanent errors naming the table.
    plan = plan_table(engine, table, pipeline="products")
    plan.check()
    guard = LateCommitGuard(table, CURSOR_COLUMN, enabled=late_commit_guard)
    resource = sql_table(
        credentials=engine,
        table=table,
        metadata=metadata,
        backend=backend,
        chunk_size=chunk_size,
        backend_kwargs=_backend_options(backend, chunk_size),
        reflection_level="full",  # keeps numeric precision, time zones, jsonb and arrays as they are
        table_loader_class=guarded_loader_class(backend, plan),
        type_adapter_callback=reflection_type_adapter,
        # `>=` on the cursor re-reads the rows that share the last value, so a row updated in the same
        # instant as the previous run's last row is not lost. The merge on `id` makes the re-read
        # harmless, so dlt's boundary de-duplication (a hash per boundary row kept in the state) is
        # switched off with `primary_key=()` - the incremental state stays one timestamp.
        # A row whose cursor is NULL (the application broke its contract) is loaded, not a failed
        # run: dlt adds `OR updated_at IS NULL` to the query, so such rows are read again (and
        # merged, harmlessly) on every run until the application stamps them.
        incremental=dlt.sources.incremental(CURSOR_COLUMN, primary_key=(), on_cursor_value_missing="include"),
        # Reads the late-commit horizon just before the query runs (late_commits.py).
        query_adapter_callback=guard.adapt(plan.adapt_query),
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
        primary_key=PRIMARY_KEY,
    )
    # Keep dlt's de-duplication of the staging table (the `x-stage-data-deduplicated` hint would
    # skip it): a load job re-run after a crash can put its rows into staging twice.
    plan.apply(resource)  # destination types from the source: integer widths, lengths, decimals
    resource.apply_hints(columns={SOFT_DELETE_COLUMN: {"name": SOFT_DELETE_COLUMN, "hard_delete": True}})
    # After dlt's incremental step: the stored cursor never passes a transaction still open.
    resource.add_step(AfterIncremental(guard.cap_state))
    return resource


def _backend_options(backend: str, chunk_size: int) -> dict[str, Any]:
    # connectorx would otherwise read the whole table into one Arrow table in memory; streaming
    # keeps memory bounded by `chunk_size` rows.
    if backend == "connectorx":
        return {"return_type": "arrow_stream", "batch_size": chunk_size}
    return {}


def connect(credentials: ConnectionStringCredentials) -> sa.Engine:
    """Create the engine and prove the database answers, so failures name the settings to fix.

    Args:
        credentials: The database connection.

    Returns:
        A SQLAlchemy engine.

    Raises:
        ConfigurationError: Incomplete or unparsable credentials, rejected credentials or a missing
            database (never retried; the message names the key, never a secret).
        UpstreamUnavailableError: The server did not answer.
    """
    return connect_postgres(
        credentials,
        key=CREDENTIALS_KEY,
        pipeline="products",
        application_name="dlt-products",
        connect_timeout_seconds=CONNECT_TIMEOUT_SECONDS,
    )
