"""The destination half of a key reconciliation, and when to run one.

A source's reconciliation (e.g. `sources/products/reconcile.py`) compares upstream ids with the
destination's and deletes the destination rows gone upstream. This module gives it the destination's
ids through dlt's SQL client (DuckDB and Snowflake alike: identifiers are cased by dlt), and keeps the
count of runs since the last reconciliation in the pipeline's local state, so a pipeline reconciles
every N runs. A working directory without that count (a first run, a new container) reconciles at once -
unless the run has just copied every reconciled table whole (a first load into empty tables, a full
refresh): the destination then holds exactly the rows read, so that copy counts as the reconciliation
and the count restarts (measured at 1M products: comparing the ids after a first load cost about a
sixth of its CPU time, to find nothing).

The outcome is stored beside the count with the id of the run's trace, so the load summary and the
run's artifact can show what this run deleted (`reconciled_deletes`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation

# Key in the pipeline's local state (not synchronised with the destination).
STATE_KEY = "key_reconciliation"


class SqlClientKeys:
    """`DestinationKeys` over a dlt pipeline's SQL client (one connection for the reconciliation).

    Use as a context manager: the connection is open inside the block.

    Args:
        pipeline: The pipeline whose dataset holds the tables.
    """

    def __init__(self, pipeline: dlt.Pipeline) -> None:
        self._pipeline = pipeline
        self._client: Any = None

    def __enter__(self) -> SqlClientKeys:
        self._client = self._pipeline.sql_client().__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.__exit__(None, None, None)

    def _names(self, table: str, key: str) -> tuple[str, str]:
        return self._client.make_qualified_table_name(table), self._client.escape_column_name(key)

    def keys(self, table: str, key: str, after: int | None, upto: int | None) -> list[int]:
        """Keys of `table` with `after < key <= upto` (either bound may be None), ascending."""
        name, column = self._names(table, key)
        where = [f"{column} > {int(after)}"] if after is not None else []
        where += [f"{column} <= {int(upto)}"] if upto is not None else []
        condition = f" WHERE {' AND '.join(where)}" if where else ""
        query = f"SELECT {column} FROM {name}{condition} ORDER BY {column}"  # noqa: S608 - dlt-escaped names, ints
        try:
            rows = self._client.execute_sql(query) or []
        except DatabaseUndefinedRelation:
            return []
        return [int(row[0]) for row in rows]

    def delete(self, table: str, key: str, keys: Sequence[int]) -> None:
        """Delete the rows of `table` whose key is in `keys`, in one transaction."""
        if not keys:
            return
        name, column = self._names(table, key)
        listed = ", ".join(str(int(k)) for k in keys)
        with self._client.begin_transaction():
            self._client.execute_sql(f"DELETE FROM {name} WHERE {column} IN ({listed})")  # noqa: S608


def reconcile_if_due(
    pipeline: dlt.Pipeline,
    every_runs: int,
    reconcile: Callable[[], dict[str, int]],
    *,
    force: bool = False,
    copied_whole: bool = False,
) -> dict[str, int] | None:
    """Run `reconcile` if this is the N-th run since the last one (or `force`), and record it.

    Args:
        pipeline: The pipeline that has just run (its last trace identifies the run).
        every_runs: Reconcile every this many runs; 0 never (unless forced).
        reconcile: Does the work; returns rows deleted per table.
        force: Reconcile now, whatever the count.
        copied_whole: The run loaded every reconciled table whole into an empty (or dropped) table:
            that counts as a reconciliation - the count restarts and nothing is compared, unless
            `force`.

    Returns:
        Rows deleted per table, or None when no reconciliation ran.
    """
    record: dict[str, Any] = dict(_local(pipeline) or {})
    if copied_whole and not force and every_runs > 0:
        pipeline.set_local_state_val(STATE_KEY, {"runs_since": 0})
        return None
    runs_since = record.get("runs_since")
    due = force or (every_runs > 0 and (runs_since is None or int(runs_since) + 1 >= every_runs))
    if not due:
        record["runs_since"] = (int(runs_since) if runs_since is not None else 0) + 1
        pipeline.set_local_state_val(STATE_KEY, record)
        return None
    deleted = reconcile()
    pipeline.set_local_state_val(
        STATE_KEY, {"runs_since": 0, "trace_id": _trace_id(pipeline), "deleted": dict(deleted)}
    )
    return deleted


def reconciled_deletes(pipeline: Any) -> dict[str, int] | None:
    """Rows the key reconciliation deleted in the pipeline's last run, per table; None if it did not run.

    Args:
        pipeline: A dlt pipeline (anything else gives None).

    Returns:
        Rows deleted per table, or None.
    """
    record = _local(pipeline)
    if not record or record.get("trace_id") is None or record.get("trace_id") != _trace_id(pipeline):
        return None
    return {str(table): int(count) for table, count in (record.get("deleted") or {}).items()}


def _local(pipeline: Any) -> dict[str, Any] | None:
    try:
        value = pipeline.get_local_state_val(STATE_KEY)
    except (KeyError, AttributeError):
        return None
    return value if isinstance(value, dict) else None


def _trace_id(pipeline: Any) -> str | None:
    trace = getattr(pipeline, "last_trace", None)
    value = getattr(trace, "transaction_id", None)
    return str(value) if value is not None else None
