"""Key reconciliation: PostgreSQL ids against a DuckDB table, chunk by chunk."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import duckdb
import psycopg2
import pytest
import sqlalchemy as sa

from sandbox.postgres import CatalogueMutator, PostgresServer
from sources.products.reconcile import ReconciliationRefusedError, reconcile_table, source_key_chunks


class DuckDbKeys:
    """The destination's side over a real DuckDB table (what SqlClientKeys does through dlt)."""

    def __init__(self, ids: Sequence[int]) -> None:
        self.con = duckdb.connect()
        self.con.execute("create table products (id bigint primary key)")
        self.con.executemany("insert into products values (?)", [(i,) for i in ids])
        self.queries = 0

    def keys(self, table: str, key: str, after: int | None, upto: int | None) -> list[int]:
        self.queries += 1
        low = -(2**62) if after is None else after
        high = 2**62 if upto is None else upto
        rows = self.con.execute(
            f"select {key} from {table} where {key} > ? and {key} <= ? order by {key}", [low, high]
        ).fetchall()
        return [int(r[0]) for r in rows]

    def delete(self, table: str, key: str, keys: Sequence[int]) -> None:
        self.con.execute(f"delete from {table} where {key} in (select unnest(?::bigint[]))", [list(keys)])

    def ids(self) -> list[int]:
        return [int(r[0]) for r in self.con.execute("select id from products order by id").fetchall()]


@pytest.fixture
def engine(postgres_server: PostgresServer, catalogue: CatalogueMutator) -> Iterator[sa.Engine]:
    engine = sa.create_engine(postgres_server.reader_dsn)
    yield engine
    engine.dispose()


def _source_ids(postgres_server: PostgresServer) -> list[int]:
    with psycopg2.connect(postgres_server.dsn.replace("+psycopg2", "")) as conn, conn.cursor() as cur:
        cur.execute("select id from products order by id")
        ids = [int(r[0]) for r in cur.fetchall()]
    conn.close()
    return ids


def test_source_keys_come_in_ascending_chunks(engine: sa.Engine, postgres_server: PostgresServer) -> None:
    chunks = list(source_key_chunks(engine, "products", "id", 700))
    assert [len(c) for c in chunks] == [700, 700, 600]
    assert [k for c in chunks for k in c] == _source_ids(postgres_server)


def test_ids_gone_upstream_are_deleted_wherever_they_fall(
    engine: sa.Engine, postgres_server: PostgresServer
) -> None:
    upstream = _source_ids(postgres_server)
    # Gone upstream: below the first id, on and around chunk boundaries, in gaps, above the last.
    gone = [-5, 0, upstream[-1] + 1, upstream[-1] + 1000]
    destination = DuckDbKeys(upstream + gone)
    with psycopg2.connect(postgres_server.dsn.replace("+psycopg2", "")) as conn, conn.cursor() as cur:
        removed = [upstream[0], upstream[99], upstream[100], upstream[101], upstream[1500], upstream[-1]]
        cur.execute("delete from products where id = any(%s)", (removed,))
    conn.close()
    result = reconcile_table(engine, destination, "products", chunk_size=100)
    assert result.deleted == len(gone) + len(removed)
    assert destination.ids() == _source_ids(postgres_server)
    assert result.source_keys == len(upstream) - len(removed)
    assert result.destination_keys == len(upstream) + len(gone)
    assert destination.queries == 20 + 1  # one range per chunk, and the tail


def test_ids_missing_downstream_are_counted_not_invented(
    engine: sa.Engine, postgres_server: PostgresServer
) -> None:
    upstream = _source_ids(postgres_server)
    destination = DuckDbKeys(upstream[10:])
    result = reconcile_table(engine, destination, "products", chunk_size=500)
    assert (result.deleted, result.missing) == (0, 10)
    assert destination.ids() == upstream[10:]


def test_an_upstream_that_looks_emptied_deletes_nothing(
    engine: sa.Engine, postgres_server: PostgresServer
) -> None:
    upstream = _source_ids(postgres_server)
    destination = DuckDbKeys(upstream + list(range(upstream[-1] + 1, upstream[-1] + 3000)))
    with pytest.raises(ReconciliationRefusedError, match=r"would delete 2999 of the 4999 rows"):
        reconcile_table(engine, destination, "products", chunk_size=500, max_delete_fraction=0.5)
    assert len(destination.ids()) == len(upstream) + 2999
