"""A generic `<name>_records` table in the sandbox PostgreSQL, for generated SQL pipelines."""

from __future__ import annotations

import psycopg2
from psycopg2 import sql

from sandbox.postgres import PostgresServer, TablesStandIn, to_libpq_url


class RecordsTable(TablesStandIn):
    """Create, seed and change a records table (id, name, amount, updated_at, deleted_at).

    Args:
        server: The running sandbox PostgreSQL.
        table: Table name.
        rows: Rows seeded at start.
    """

    def __init__(self, server: PostgresServer, table: str, *, rows: int = 250) -> None:
        super().__init__(server)
        self.tables = (table,)
        self.name = sql.Identifier(table)
        self.rows = rows

    def _run(self, statement: sql.Composable, *args: object) -> list[tuple[object, ...]]:
        with psycopg2.connect(to_libpq_url(self.server.dsn)) as conn, conn.cursor() as cur:
            cur.execute(statement, args or None)
            return cur.fetchall() if cur.description else []

    def _start(self) -> None:
        self.seed(self.rows)

    def simulate_activity(self) -> None:
        """New, changed and soft-deleted rows."""
        self.insert(5)
        self.update(10)
        self.soft_delete(3)

    def seed(self, rows: int) -> None:
        """(Re)create the table with `rows` deterministic rows."""
        self._run(sql.SQL("drop table if exists {t}").format(t=self.name))
        self._run(
            sql.SQL(
                "create table {t} (id bigint primary key, name text not null, amount numeric(12,2), "
                "updated_at timestamptz not null, deleted_at timestamptz)"
            ).format(t=self.name)
        )
        self.insert(rows)

    def insert(self, n: int) -> None:
        """Add `n` rows after the highest id."""
        self._run(
            sql.SQL(
                "insert into {t} select g, 'Row ' || g || ' - ü', (g * 137 %% 10000) / 100.0, "
                "timestamptz '2025-01-01' + g * interval '1 second', null "
                "from generate_series((select coalesce(max(id), 0) + 1 from {t}), "
                "(select coalesce(max(id), 0) + %s from {t})) g"
            ).format(t=self.name),
            n,
        )

    def update(self, n: int) -> None:
        """Change the `n` lowest live ids (new amount, updated now)."""
        self._run(
            sql.SQL(
                "update {t} set amount = amount + 1.01, updated_at = clock_timestamp() where id in "
                "(select id from {t} where deleted_at is null order by id limit %s)"
            ).format(t=self.name),
            n,
        )

    def soft_delete(self, n: int) -> None:
        """Soft-delete the `n` highest live ids."""
        self._run(
            sql.SQL(
                "update {t} set deleted_at = clock_timestamp(), updated_at = clock_timestamp() where id in "
                "(select id from {t} where deleted_at is null order by id desc limit %s)"
            ).format(t=self.name),
            n,
        )

    def live_ids(self) -> list[int]:
        """Ids of rows not soft-deleted."""
        rows = self._run(
            sql.SQL("select id from {t} where deleted_at is null order by id").format(t=self.name)
        )
        return [int(r[0]) for r in rows]  # type: ignore[call-overload]
