"""First loads and full refreshes: append straight into an empty table instead of stage + merge.

The products tables are merged on `id` (dlt's `delete-insert`): every run loads its rows into a
staging table, then deletes the matching rows from the table and inserts the de-duplicated staging
rows. For a first load into an empty table - or a full refresh, which drops the table first - there
is nothing to match: the merge SQL only costs time (measured at 1M rows: 12 % of the wall time and
18 % of the CPU time) and leaves a full copy of the table behind in the staging dataset. So when, and
only when, the destination table is empty or being replaced, its rows are appended directly, and the
rows soft-deleted upstream (which the merge would have deleted) are dropped from the Arrow batches
before they are written. Every later run merges as before.

The one thing the merge gave a first load for free is idempotence when a load is killed half-way and
resumed: a job whose rows were committed just before the kill runs again, and in staging the
duplicate copy is de-duplicated; appended, it would be duplicated. `restart_interrupted_first_loads`
handles that: a first-load package found half-loaded empties its tables again (they were empty or
dropped when it started) and loads all of its jobs from the beginning.

Two steps keep the fast path free of needless copies of each batch (profiled at 1M rows: dlt's
split below took about 6 % of a first load, a third as much as writing the Parquet files):

* dlt's Arrow incremental step splits every batch in two (rows with and without a cursor value,
  two filters that copy every column) whenever the cursor's Arrow field is nullable - and
  connectorx declares every field nullable. `mark_cursor_filled` declares the field not nullable,
  without copying, for a batch whose cursor has no NULL, just before dlt's step;
  `after_incremental` restores the field right behind it, so nothing downstream sees a change.
* The soft-deleted rows are dropped right behind dlt's step, so the stored cursor still covers them
  (as on the merge path, which reads them, then deletes them); only batches holding one are copied.

Nothing here reads settings: the pipeline calls `prepare` with the pipeline and the source.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from dlt.extract.items_transform import MapItem

from sources.products.settings import CURSOR_COLUMN, PRIMARY_KEY, SOFT_DELETE_COLUMN

if TYPE_CHECKING:
    import dlt
    from dlt.sources import DltResource, DltSource

# Table hint: True when the table's last load appended directly (the fast path), False when it merged.
FIRST_LOAD_HINT = "x-products-first-load"

# Id ranges a first load reads at once (`read_in_partitions`), overridden by this setting. One by
# default: on the 2-core machine bench/products.py runs on, two ranges were no faster at 1M rows and
# cost about 1 s more CPU (issue 14); with more cores, PostgreSQL and the reader may use them.
PARTITIONS_KEY = "sources.products.first_load_partitions"
PARTITIONS = 1

# Arrow field metadata marking a cursor field that `mark_cursor_filled` declared not nullable.
_FILLED_MARK = b"x-products-cursor-filled"


def prepare(pipeline: dlt.Pipeline, source: DltSource, *, refresh: bool, partitions: int = 1) -> list[str]:
    """Switch the tables whose destination table is empty (or being replaced) to a direct append.

    Also restarts a first load that was killed half-way (see `restart_interrupted_first_loads`),
    before deciding, so its tables count as not empty and its package is finished by dlt as usual.

    Args:
        pipeline: The pipeline that will run `source`.
        source: The products source; its resources are changed in place.
        refresh: The run drops and reloads the source's tables (`refresh="drop_sources"`).
        partitions: Read each table switched to the fast path in this many id ranges at once
            (see `read_in_partitions`); 1 reads it in one query.

    Returns:
        The names of the resources switched to the fast path.
    """
    resources = list(source.selected_resources.values())
    restart_interrupted_first_loads(
        pipeline, [r.table_name for r in resources if isinstance(r.table_name, str)]
    )
    if refresh:
        chosen = resources
    else:
        without_cursor = [r for r in resources if _cursor(pipeline, source.name, r.name) is None]
        chosen = [r for r in without_cursor if _destination_table_is_empty(pipeline, str(r.table_name))]
    chosen_names = {r.name for r in chosen}
    for resource in resources:
        if resource.name in chosen_names:
            append_directly(resource, partitions=partitions)
        else:
            # Recorded on every run, so the stored schema tells which path the last run took.
            resource.apply_hints(additional_table_hints={FIRST_LOAD_HINT: False})
    return sorted(chosen_names)


def append_directly(resource: DltResource, *, partitions: int = 1) -> None:
    """Load `resource` by appending, with its soft-deleted rows dropped on the way.

    Args:
        resource: A products table resource (merge on `id`, `hard_delete` on `deleted_at`).
        partitions: Id ranges to read at once (`read_in_partitions`); 1 reads the table in one query.
    """
    if partitions > 1:
        read_in_partitions(resource, partitions)
    resource.apply_hints(
        write_disposition="append",
        # dlt applies `hard_delete` only when merging (and warns otherwise): the step below does it.
        columns={SOFT_DELETE_COLUMN: {"name": SOFT_DELETE_COLUMN, "hard_delete": False}},
        additional_table_hints={FIRST_LOAD_HINT: True},
    )
    # A plain map runs before dlt's incremental step (dlt keeps that step behind every map).
    resource.add_map(mark_cursor_filled)
    # Behind the incremental step, so the cursor still advances past soft-deleted rows - as on the
    # merge path, where they are read, then deleted.
    resource.add_step(AfterFirstLoadIncremental(after_incremental))


def read_in_partitions(resource: DltResource, partitions: int) -> bool:
    """Let connectorx read the table in `partitions` id ranges, over as many connections at once.

    connectorx's `partition_on`/`partition_num` (passed through dlt's `backend_kwargs`) first asks
    for the lowest and highest id of dlt's query, then runs the query once per id range, each on its
    own connection, and streams the batches as they come - in no particular order, which only a
    first load can take: it appends, and the cursor is the maximum over every row. Each range is its
    own snapshot, which loses nothing: the late-commit guard reads its horizon before any of these
    queries, so a row committed after one of them started is stamped after the stored cursor and
    read by the next run (sources/products/late_commits.py).

    Args:
        resource: A products table resource built by `sources.products.source.catalogue_table`.
        partitions: The number of id ranges (and connections).

    Returns:
        True when the reads are partitioned; False for another backend, a non-streaming read or an
        `id` that is not an integer.
    """
    args = resource.explicit_args if resource.args_bound else {}
    options = args.get("backend_kwargs")
    if args.get("backend") != "connectorx" or not isinstance(options, dict):
        return False
    if options.get("return_type") != "arrow_stream":
        return False
    # connectorx splits the range of an integer column only (anything else fails the read).
    columns = resource.columns if isinstance(resource.columns, dict) else {}
    if columns.get(PRIMARY_KEY, {}).get("data_type") != "bigint":
        return False
    # dlt passes this very dict to its connectorx loader when the resource is extracted.
    options.update(partition_on=PRIMARY_KEY, partition_num=partitions)
    return True


class AfterFirstLoadIncremental(MapItem):
    """A map step dlt keeps behind its incremental step (and behind the late-commit guard's).

    dlt orders a resource's steps by this affinity: maps 0, incremental 1, the late-commit guard's
    step 1.05 (sources/products/late_commits.py), dlt's `add_limit` 1.1.
    """

    placement_affinity: ClassVar[float] = 1.07


def mark_cursor_filled(item: Any) -> Any:
    """Declare the cursor's Arrow field not nullable when the batch has no NULL cursor (no copy).

    dlt's Arrow incremental step filters a batch twice (a copy of every column) to set aside the
    rows without a cursor value whenever the field is nullable, even when there is none.
    `after_incremental` undoes this behind dlt's step.

    Args:
        item: What the resource yields; anything but an Arrow table or batch passes unchanged.

    Returns:
        The item, or the same columns under a schema whose cursor field is not nullable.
    """
    schema = getattr(item, "schema", None)
    if schema is None or not hasattr(item, "column_names"):
        return item
    index = schema.get_field_index(CURSOR_COLUMN)
    if index < 0 or not schema.field(index).nullable or item.column(index).null_count:
        return item
    field = schema.field(index)
    marked = field.with_nullable(False).with_metadata({**(field.metadata or {}), _FILLED_MARK: b"1"})
    return _with_schema(item, schema.set(index, marked))


def after_incremental(item: Any) -> Any:
    """Behind dlt's incremental step: restore the cursor field, drop the soft-deleted rows.

    Args:
        item: What the resource yields (see `drop_soft_deleted`).

    Returns:
        The item as `drop_soft_deleted` leaves it, its cursor field as the reader declared it.
    """
    return drop_soft_deleted(_restore_cursor_field(item))


def _restore_cursor_field(item: Any) -> Any:
    schema = getattr(item, "schema", None)
    if schema is None or not hasattr(item, "column_names"):
        return item
    index = schema.get_field_index(CURSOR_COLUMN)
    if index < 0:
        return item
    field = schema.field(index)
    metadata = dict(field.metadata or {})
    if metadata.pop(_FILLED_MARK, None) is None:
        return item
    restored = field.with_nullable(True)
    restored = restored.with_metadata(metadata) if metadata else restored.remove_metadata()
    return _with_schema(item, schema.set(index, restored))


def _with_schema(item: Any, schema: Any) -> Any:
    """The same column buffers under `schema` (names and types unchanged): nothing is copied."""
    import pyarrow as pa

    if isinstance(item, pa.RecordBatch):
        return pa.RecordBatch.from_arrays(item.columns, schema=schema)
    return pa.Table.from_arrays(item.columns, schema=schema)


def drop_soft_deleted(item: Any) -> Any:
    """Remove the rows whose `deleted_at` is set from an Arrow table or batch (or rows as dicts).

    Args:
        item: What the resource yields: a `pyarrow.Table` or `RecordBatch`, a list of dicts or a dict.

    Returns:
        The same kind of item without soft-deleted rows (None for a soft-deleted dict).
    """
    if isinstance(item, dict):
        return None if item.get(SOFT_DELETE_COLUMN) is not None else item
    if isinstance(item, list):
        return [row for row in item if row.get(SOFT_DELETE_COLUMN) is None]
    column_names = getattr(item, "column_names", None)
    if column_names is None or SOFT_DELETE_COLUMN not in column_names:
        return item
    column = item.column(SOFT_DELETE_COLUMN)
    if column.null_count == len(column):
        return item  # the common case: no soft-deleted row in the batch, nothing to copy
    import pyarrow.compute as pc

    return item.filter(pc.is_null(column))


def restart_interrupted_first_loads(pipeline: dlt.Pipeline, tables: Iterable[str]) -> list[str]:
    """Make a first load that was killed half-way load again from its first job.

    A pending (normalised, not fully loaded) package that appends into one of `tables` comes from
    `append_directly`, so those tables were empty or dropped when it started, and only it has written
    to them since (runs of a pipeline never overlap). If any of its jobs for them started, the tables
    are emptied and every such job is queued again; dlt then loads the package as usual. Without this,
    a job whose rows were committed just before the kill would be loaded a second time.

    Args:
        pipeline: The pipeline whose working directory to check.
        tables: The products tables (destination names).

    Returns:
        The load ids of the packages restarted.
    """
    try:
        packages = pipeline._get_load_storage().normalized_packages
        load_ids = packages.list_packages()
    except FileNotFoundError:  # a pipeline that never ran has no storage folders yet
        return []
    names = set(tables)
    restarted = []
    for load_id in load_ids:
        schema_tables = packages.load_schema(load_id).tables
        appended = {
            name
            for name in names
            if name in schema_tables and schema_tables[name].get("write_disposition") == "append"
        }
        jobs = [
            (state, job)
            for state, job in packages.list_all_jobs_with_states(load_id)
            if job.table_name in appended and state in ("started_jobs", "completed_jobs")
        ]
        if not jobs:
            continue
        _empty_tables(pipeline, sorted({job.table_name for _, job in jobs}))
        for state, job in jobs:
            packages.clear_pending_transition(load_id, job.file_name())
            if state == "completed_jobs":
                packages._move_job(load_id, "completed_jobs", "new_jobs", job.file_name())
            # started jobs are run again by dlt when it resumes the package
        restarted.append(load_id)
    return restarted


def _empty_tables(pipeline: dlt.Pipeline, tables: list[str]) -> None:
    from dlt.destinations.exceptions import DatabaseUndefinedRelation

    with pipeline.sql_client() as client:
        for table in tables:
            with contextlib.suppress(DatabaseUndefinedRelation):
                client.execute_sql(f"DELETE FROM {client.make_qualified_table_name(table)}")  # noqa: S608 - dlt-escaped name


def _cursor(pipeline: dlt.Pipeline, source_name: str, resource_name: str) -> Any:
    resources = pipeline.state.get("sources", {}).get(source_name, {}).get("resources", {})
    incremental = resources.get(resource_name, {}).get("incremental", {}).get(CURSOR_COLUMN, {})
    return incremental.get("last_value")


def _destination_table_is_empty(pipeline: dlt.Pipeline, table: str) -> bool:
    """True when the table (or its dataset) does not exist in the destination, or has no rows.

    Asked only on a run without a cursor (a first run, or one whose local state was lost): a table
    that dlt's state restore would bring back holds rows, so it is merged into as usual.
    """
    from dlt.destinations.exceptions import DatabaseUndefinedRelation

    try:
        with pipeline.sql_client() as client:
            rows = client.execute_sql(
                f"SELECT 1 FROM {client.make_qualified_table_name(table)} LIMIT 1"  # noqa: S608 - dlt-escaped name
            )
    except DatabaseUndefinedRelation:
        return True
    return not rows
