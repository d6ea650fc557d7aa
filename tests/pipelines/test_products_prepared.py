"""Prepared (two-phase) transactions and the late-commit guard, on a real PostgreSQL that allows them.

A `PREPARE TRANSACTION`-ed transaction leaves `pg_stat_activity` (its session may even be gone) but
can still `COMMIT PREPARED` much later, making rows visible that were stamped before it was
prepared - before `pg_prepared_xacts.prepared`, so that column is not a safe bound.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest

from pipelines import products as products_pipeline
from sandbox.postgres import CatalogueMutator, PostgresServer
from tests.pipelines.products_helpers import assert_destination_equals_source, destination_rows, source_rows

# The sandbox's default server has max_prepared_transactions = 0 (PostgreSQL's default).
PREPARED_SETTINGS = {"max_prepared_transactions": "4"}


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    """Overrides the session's server for this module: one that allows prepared transactions."""
    with PostgresServer(settings=PREPARED_SETTINGS) as server:
        yield server


def _owner(server: PostgresServer) -> psycopg2.extensions.connection:
    return psycopg2.connect(server.dsn.replace("+psycopg2", ""))


def _cursor(table: str = "products") -> datetime:
    state = products_pipeline.pipeline().state["sources"]["products"]["resources"][table]
    value: datetime = state["incremental"]["updated_at"]["last_value"]
    return value


def _prepare(server: PostgresServer, gid: str, statement: str, args: tuple[object, ...]) -> datetime:
    """Run `statement` in a transaction, prepare it as `gid` and close the session; return its stamp."""
    session = _owner(server)
    try:
        with session.cursor() as cur:
            cur.execute(statement, args)
            stamped = cur.fetchone()[0]
            # Some time passes between the write and PREPARE (a coordinator waits for its other
            # participants): `prepared` is later than every row the transaction stamped.
            cur.execute("select pg_sleep(0.05)")
            cur.execute("prepare transaction %s", (gid,))
        session.rollback()  # the session is no longer in a transaction; psycopg2 needs telling
    finally:
        session.close()  # the prepared transaction outlives its session
    stamp: datetime = stamped
    return stamp


def _finish(server: PostgresServer, gid: str, *, commit: bool = True) -> None:
    session = _owner(server)
    try:
        session.autocommit = True
        with session.cursor() as cur:
            cur.execute(f"{'commit' if commit else 'rollback'} prepared %s", (gid,))
    finally:
        session.close()


@pytest.fixture
def no_prepared_left(postgres_server: PostgresServer) -> Iterator[None]:
    """Rolls back any prepared transaction a failed test left behind (they outlive sessions)."""
    yield
    session = _owner(postgres_server)
    try:
        session.autocommit = True
        with session.cursor() as cur:
            cur.execute("select gid from pg_prepared_xacts where database = current_database()")
            for (gid,) in cur.fetchall():
                cur.execute("rollback prepared %s", (gid,))
    finally:
        session.close()


def test_a_prepared_transaction_committed_after_two_runs_is_loaded(
    catalogue: CatalogueMutator,
    postgres_server: PostgresServer,
    warehouse: Path,
    no_prepared_left: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    products_pipeline.run()
    late, early = sorted(destination_rows(warehouse))[:2]
    stamped = _prepare(
        postgres_server,
        "order-42",
        "update products set price = 4321.00 where id = %s returning updated_at",
        (late,),
    )
    with _owner(postgres_server) as conn, conn.cursor() as cur:
        cur.execute("select prepared from pg_prepared_xacts where gid = 'order-42'")
        prepared_at = cur.fetchone()[0]
    assert stamped < prepared_at  # so capping at `prepared` would skip the row
    # Other sessions commit newer changes: without the guard the cursor would pass the stamp.
    catalogue.update_products([early])
    with caplog.at_level(logging.WARNING, logger="sources.products.late_commits"):
        products_pipeline.run()
    assert destination_rows(warehouse)[early]["price"] == source_rows(postgres_server.dsn)[early]["price"]
    assert _cursor() <= stamped
    warnings = [r.getMessage() for r in caplog.records if "order-42" in r.getMessage()]
    assert warnings, "the run names the prepared transaction that holds the cursor"
    assert "products.products" in warnings[0] and "COMMIT PREPARED" in warnings[0]
    catalogue.update_products(5)
    products_pipeline.run()  # a second run while it is still prepared
    assert _cursor() <= stamped
    _finish(postgres_server, "order-42")
    products_pipeline.run()
    assert destination_rows(warehouse)[late]["price"] == Decimal("4321.00")
    assert_destination_equals_source(postgres_server.dsn, warehouse, "products")
    # Resolved, the cursor moves on to the newest row again.
    products_pipeline.run()
    assert _cursor() == max(r["updated_at"] for r in source_rows(postgres_server.dsn).values())


def test_a_prepared_transaction_on_another_table_does_not_hold_the_cursor(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, warehouse: Path, no_prepared_left: None
) -> None:
    # A forgotten prepared transaction elsewhere in the database (here: one that changed a category)
    # cannot write products any more - its locks are fixed at PREPARE - so products' cursor moves on.
    products_pipeline.run()
    _prepare(
        postgres_server,
        "elsewhere",
        "update categories set name = name || ' (new)' where id = 1 returning updated_at",
        (),
    )
    changed = catalogue.update_products(3)
    products_pipeline.run()
    newest = max(r["updated_at"] for r in source_rows(postgres_server.dsn).values())
    assert _cursor() == newest
    assert {i: destination_rows(warehouse)[i]["stock"] for i in changed} == {
        i: source_rows(postgres_server.dsn)[i]["stock"] for i in changed
    }
    # ...while categories' cursor is held until the prepared transaction is resolved.
    held = _cursor("categories")
    _finish(postgres_server, "elsewhere")
    products_pipeline.run()
    assert_destination_equals_source(postgres_server.dsn, warehouse, "categories")
    assert _cursor("categories") >= held
