"""Late-commit guard: the stored cursor never passes a transaction that may still commit.

The catalogue's `updated_at` is stamped inside the writing transaction (the trigger's `now()` or
`clock_timestamp()`), but the row only becomes visible when that transaction commits. A transaction
that opened at T1 and commits after our read leaves rows stamped >= T1 that the read could not see;
if the stored cursor had moved past T1 (because another session's row stamped T2 > T1 committed in
time), `updated_at >= cursor` would never select them again.

So each table's extract first reads, from the same server, the *horizon*:

    min(clock_timestamp(), xact_start of every other transaction open in this database)

and after the extract the stored cursor (dlt's own incremental state, `last_value`) is lowered to the
horizon if it went past it. Every row a transaction that was still open commits later is stamped at or
after that transaction's start, and every transaction that begins after the horizon was read stamps
later still, so the next run's `updated_at >= cursor` selects them - whatever the transaction's
duration. The price is re-reading (and merging again, harmlessly) the rows changed since the horizon.

The horizon is read *before* the data query starts, which matters: a transaction that commits between
the two is then either in the horizon (it was open when the horizon was read) or visible to the query.

Seeing other roles' transactions in `pg_stat_activity` needs the `pg_read_all_stats` role (included in
`pg_monitor`; superusers have it). Without it `xact_start` is NULL for other roles' sessions, the horizon
cannot be known, and the extract fails with a permanent `ConfigurationError` naming the GRANT - unless
the guard is switched off (`sources.products.late_commit_guard = false`), accepting that late commits
may be lost. A hot standby cannot see the primary's open transactions at all, so it is refused the same
way.

A prepared (two-phase) transaction leaves `pg_stat_activity` at PREPARE TRANSACTION (its session may
even end) but can COMMIT PREPARED at any later time, making visible rows stamped when it wrote them -
*before* `pg_prepared_xacts.prepared`, so that column is no safe bound, and its start is not recorded
anywhere. What is known: at the previous run's horizon it was either open (so that run's cursor was
capped at or before its start), already prepared (so that run held its cursor the same way), or not
yet begun (so it stamps after that run's horizon). Either way every row it wrote is stamped at or
after the cursor this run started from. So while a prepared transaction that holds a lock on the table
exists, the stored cursor stays where the run started (no cursor at all if the run had none), and each
run logs a warning naming it. A prepared transaction without a lock on the table never wrote it and
cannot any more (its locks are fixed at PREPARE), so it holds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import dlt
import sqlalchemy as sa
from dlt.common.time import ensure_pendulum_datetime
from dlt.extract.items_transform import MapItem

from utils.errors import ConfigurationError

_log = logging.getLogger(__name__)

GUARD_KEY = "sources.products.late_commit_guard"

# One round trip, read before the table's data query. Autovacuum never writes application rows;
# our own session is not a writer either.
#
# Order matters: a transaction that prepares between reading pg_stat_activity and counting prepared
# transactions must be seen by one of them, so pg_stat_activity (a snapshot taken on first access) is
# read first. The LATERAL references to the subquery before make that the plan's order, not an
# accident of evaluation. Counting prepared transactions costs next to nothing; when there are any,
# HOLDERS_SQL says which of them hold this table (below), in a second round trip.
HORIZON_SQL = """
SELECT o.read_at, o.oldest_open, p.prepared,
       pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS sees_all_sessions,
       pg_is_in_recovery() AS standby,
       current_user AS role
  FROM (SELECT clock_timestamp() AS read_at) AS h
 CROSS JOIN LATERAL (
       SELECT h.read_at, min(a.xact_start) AS oldest_open FROM pg_stat_activity AS a
        WHERE a.datname = current_database()
          AND a.pid <> pg_backend_pid()
          AND a.xact_start IS NOT NULL
          AND a.backend_type NOT IN ('autovacuum worker', 'autovacuum launcher')) AS o
 CROSS JOIN LATERAL (
       SELECT count(*) AS prepared FROM pg_prepared_xacts AS x
        WHERE x.database = current_database() AND o.read_at IS NOT NULL) AS p
"""

# Which prepared transactions hold this table. A transaction that wrote the table holds a lock on it
# until it ends, and PREPARE TRANSACTION keeps its locks (pg_locks lists them with a NULL pid) while
# the transaction leaves pg_stat_activity. So the prepared transactions that can still make rows of
# this table visible are exactly those holding a lock on it or on one of its partitions or
# inheritance children (dlt's query reads those too); one prepared elsewhere in the database can
# never write it again. Read after HORIZON_SQL: a prepared transaction that ended in between has
# committed (or rolled back) before the data query starts, which then sees its rows.
HOLDERS_SQL = """
WITH RECURSIVE tree(oid) AS (
    SELECT c.oid FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
     WHERE n.nspname = coalesce(CAST(:schema AS text), current_schema()) AND c.relname = :table
    UNION
    SELECT i.inhrelid FROM pg_inherits AS i JOIN tree AS t ON i.inhparent = t.oid
),
held AS MATERIALIZED (
    SELECT DISTINCT l.virtualtransaction FROM pg_locks AS l
     WHERE l.pid IS NULL
       AND l.locktype = 'relation'
       AND l.database = (SELECT d.oid FROM pg_database AS d WHERE d.datname = current_database())
       AND l.relation IN (SELECT tree.oid FROM tree)
)
SELECT (SELECT count(*) FROM held) AS holders,
       (SELECT string_agg(format('%L (prepared at %s by %s)', p.gid, p.prepared, p.owner), ', '
                          ORDER BY p.prepared)
          FROM pg_prepared_xacts AS p
          JOIN pg_locks AS x ON x.locktype = 'transactionid' AND x.pid IS NULL
                            AND x.transactionid = p.transaction
         WHERE x.virtualtransaction IN (SELECT held.virtualtransaction FROM held)) AS names
"""

QueryAdapter = Callable[[sa.Select[Any], sa.Table], sa.Select[Any]]


@dataclass(frozen=True)
class Horizon:
    """What the server said just before a table's data query.

    Attributes:
        read_at: The server's clock when the horizon was read.
        oldest_open: Start of the oldest other transaction open in the database, if any.
        prepared: Prepared (two-phase) transactions holding a lock on the table (so they may have
            written it), waiting for COMMIT PREPARED or ROLLBACK PREPARED.
        prepared_by: Those transactions' gids, when they were prepared and by whom (for the log).
    """

    read_at: datetime
    oldest_open: datetime | None
    prepared: int
    prepared_by: str | None = None

    @property
    def cap(self) -> datetime:
        """The latest cursor value that cannot skip a row committed after the read."""
        return min(self.read_at, self.oldest_open) if self.oldest_open is not None else self.read_at


def read_horizon(engine: sa.Engine, table: str, schema: str | None = None) -> Horizon:
    """Read the horizon for `table`'s extract (see the module docstring).

    Args:
        engine: Connection to the source database, as the pipeline's role.
        table: The table about to be read (for its prepared transactions and the error message).
        schema: Its schema; None for the connection's current schema.

    Returns:
        The horizon.

    Raises:
        ConfigurationError: The role cannot see other roles' transactions, or the server is a standby.
    """
    with engine.connect() as conn:
        row = conn.execute(sa.text(HORIZON_SQL)).mappings().one()
        prepared, prepared_by = 0, None
        if row["prepared"]:
            holders = conn.execute(sa.text(HOLDERS_SQL), {"schema": schema, "table": table}).mappings().one()
            prepared, prepared_by = int(holders["holders"]), holders["names"]
    if row["standby"]:
        raise ConfigurationError(
            f"products.{table}: the database is a hot standby, which cannot see the primary's open "
            "transactions, so a change committed late could be missed for good. Point "
            "sources.products.credentials at the primary, or set "
            f"{GUARD_KEY} = false to accept that risk."
        )
    if not row["sees_all_sessions"]:
        raise ConfigurationError(
            f"products.{table}: role {row['role']} cannot see other sessions' transactions in "
            "pg_stat_activity, so the late-commit guard cannot tell which changes may still commit. "
            f"Run `GRANT pg_read_all_stats TO {row['role']};` (or grant pg_monitor) as a superuser, or "
            f"set {GUARD_KEY} = false to accept that changes committed late may be lost."
        )
    return Horizon(
        read_at=row["read_at"],
        oldest_open=row["oldest_open"],
        prepared=prepared,
        prepared_by=prepared_by,
    )


class AfterIncremental(MapItem):
    """A map step dlt keeps right behind its incremental step (dlt orders steps by this affinity).

    A plain `add_map` step would run *before* the incremental step, whatever the order of the calls:
    dlt re-places the incremental step last when the resource is bound.
    """

    placement_affinity: ClassVar[float] = 1.05  # incremental is 1, dlt's `add_limit` step 1.1


@dataclass
class LateCommitGuard:
    """Caps one table's stored incremental cursor at the horizon read before its query.

    Use `adapt` as (a wrapper of) the `sql_table` query adapter - it reads the horizon as the query is
    built, just before it runs - and `cap_state` as a map step after dlt's incremental step, which
    lowers dlt's stored `last_value` to the horizon after every batch (the last write wins).

    With `enabled` false nothing is read or capped (the rows with a NULL cursor are still counted).

    Attributes:
        table: The table (also the resource name).
        cursor: The cursor column.
        enabled: Whether to cap at all.
        horizon: The horizon of the current extract, once read.
        start_value: The cursor value the current extract started from.
        rows_without_cursor: Rows with a NULL cursor seen by the current extract.
    """

    table: str
    cursor: str
    enabled: bool = True
    horizon: Horizon | None = None
    start_value: Any = None
    rows_without_cursor: int = 0
    _warned: bool = field(default=False, repr=False)

    def adapt(self, inner: QueryAdapter) -> Callable[..., sa.Select[Any]]:
        """Wrap a two-argument query adapter so the horizon is read when the query is built.

        Args:
            inner: The adapter to apply to the query (e.g. the nested-column serialiser).

        Returns:
            A callback with dlt's four-argument signature (query, table, incremental, engine).
        """

        def adapter(query: sa.Select[Any], table: sa.Table, incremental: Any, engine: Any) -> sa.Select[Any]:
            self.rows_without_cursor = 0
            self._warned = False
            self.start_value = incremental.start_value if incremental is not None else None
            if self.enabled:
                self.horizon = read_horizon(engine, table.name, table.schema)
                if self.horizon.prepared:
                    _log.warning(
                        "products.%s: prepared transaction(s) %s hold a lock on the table, so they may "
                        "have written rows stamped before they were prepared: the cursor stays at %s "
                        "(rows since then are read again each run) until each ends with COMMIT PREPARED "
                        "or ROLLBACK PREPARED - a forgotten one must be resolved by its coordinator or a DBA",
                        self.table,
                        self.horizon.prepared_by or f"({self.horizon.prepared} without a gid)",
                        _isoformat(self.start_value)
                        if self.start_value is not None
                        else "nothing (a full read)",
                    )
            return inner(query, table)

        return adapter

    def cap(self) -> tuple[bool, datetime | None]:
        """The value the stored cursor may not pass.

        Returns:
            (whether to cap, the cap); a cap of None means "store no cursor" (a prepared transaction
            exists and there was no previous cursor).
        """
        if not self.enabled or self.horizon is None:
            return False, None
        if self.horizon.prepared:
            return True, self.start_value
        return True, self.horizon.cap

    def cap_state(self, item: Any) -> Any:
        """Map step after dlt's incremental step: lower the stored cursor to the horizon.

        Args:
            item: A batch (an Arrow table or record batch, or a list of rows); passed through unchanged.

        Returns:
            `item`.
        """
        self._count_missing_cursor(item)
        apply, cap = self.cap()
        if not apply:
            return item
        state = dlt.current.resource_state(self.table).setdefault("incremental", {}).get(self.cursor)
        if state is None:
            return item
        last_value = state.get("last_value")
        if last_value is not None and (cap is None or last_value > cap):
            state["last_value"] = None if cap is None else ensure_pendulum_datetime(cap)
            metrics = dlt.current.resource_metrics()
            metrics["cursor_capped_at"] = None if cap is None else cap.isoformat()
            metrics["cursor_seen"] = _isoformat(last_value)
        return item

    def _count_missing_cursor(self, item: Any) -> None:
        missing = _nulls_in(item, self.cursor)
        if not missing:
            return
        self.rows_without_cursor += missing
        dlt.current.resource_metrics()["rows_without_cursor"] = self.rows_without_cursor
        if not self._warned:
            self._warned = True
            _log.warning(
                "products.%s: rows with a NULL %s are loaded and read again on every run until the "
                "application sets %s",
                self.table,
                self.cursor,
                self.cursor,
            )


def _nulls_in(item: Any, column: str) -> int:
    if isinstance(item, list):
        return sum(_nulls_in(part, column) for part in item)
    if isinstance(item, dict):
        return int(item.get(column) is None)
    names = getattr(getattr(item, "schema", None), "names", None)
    if names is not None and column in names:
        return int(item.column(column).null_count)
    return 0


def _isoformat(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)
