"""The late-commit horizon, read from a real PostgreSQL, and where the cap sits in dlt's pipe."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest
import sqlalchemy as sa

from sandbox.postgres import CatalogueMutator, PostgresServer
from sources.products import products_source
from sources.products.late_commits import AfterIncremental, read_horizon
from utils.errors import ConfigurationError


@pytest.fixture
def reader(postgres_server: PostgresServer) -> Iterator[sa.Engine]:
    engine = sa.create_engine(postgres_server.reader_dsn)
    yield engine
    engine.dispose()


def _owner(postgres_server: PostgresServer) -> psycopg2.extensions.connection:
    return psycopg2.connect(postgres_server.dsn.replace("+psycopg2", ""))


def test_no_open_transaction_caps_at_the_read_time(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, reader: sa.Engine
) -> None:
    idle = _owner(postgres_server)  # connected, but not in a transaction: it cannot write unseen
    try:
        horizon = read_horizon(reader, "products")
    finally:
        idle.close()
    assert horizon.oldest_open is None
    assert horizon.prepared == 0
    assert horizon.cap == horizon.read_at


def test_an_open_transaction_of_another_role_caps_at_its_start(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, reader: sa.Engine
) -> None:
    session = _owner(postgres_server)
    try:
        with session.cursor() as cur:
            cur.execute("select now()")  # opens the transaction; nothing written yet
            started = cur.fetchone()[0]
        horizon = read_horizon(reader, "products")
    finally:
        session.rollback()
        session.close()
    assert horizon.oldest_open == started
    assert horizon.cap == started < horizon.read_at


def test_a_role_that_cannot_see_other_sessions_is_refused(
    catalogue: CatalogueMutator, postgres_server: PostgresServer, reader: sa.Engine
) -> None:
    postgres_server.set_reader_sees_all_sessions(False)
    try:
        with pytest.raises(ConfigurationError, match=r"GRANT pg_read_all_stats TO shop_reader"):
            read_horizon(reader, "products")
    finally:
        postgres_server.set_reader_sees_all_sessions(True)


def test_the_cap_runs_right_after_dlts_incremental_step(catalogue: CatalogueMutator) -> None:
    for resource in products_source().resources.values():
        steps = [type(step).__name__ for step in resource._pipe.steps]
        assert steps.index("AfterIncremental") == steps.index("IncrementalResourceWrapper") + 1, steps
        assert any(isinstance(step, AfterIncremental) for step in resource._pipe.steps)


def test_a_prepared_transaction_keeps_the_cursor_where_it_started() -> None:
    # A prepared (two-phase) transaction holding the table has no session and no known start: the
    # cursor must not advance past where this run started (the decision alone; on a real server with
    # prepared transactions: tests/pipelines/test_products_prepared.py).
    from datetime import UTC, datetime, timedelta

    from sources.products.late_commits import Horizon, LateCommitGuard

    now = datetime.now(UTC)
    guard = LateCommitGuard("products", "updated_at")
    guard.start_value = now - timedelta(hours=1)
    guard.horizon = Horizon(read_at=now, oldest_open=None, prepared=1)
    assert guard.cap() == (True, now - timedelta(hours=1))
    guard.horizon = Horizon(read_at=now, oldest_open=now - timedelta(minutes=5), prepared=0)
    assert guard.cap() == (True, now - timedelta(minutes=5))
    assert LateCommitGuard("products", "updated_at", enabled=False).cap() == (False, None)
