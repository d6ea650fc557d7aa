"""The sandbox PostgreSQL server, its seeded catalogue and the mutation helpers."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import pytest
import sqlalchemy as sa

from sandbox.postgres import (
    READER_ROLE,
    SEED_EPOCH,
    CatalogueMutator,
    PostgresServer,
    fetch_table,
    seed_catalogue,
    table_checksum,
    to_libpq_url,
)

ROWS = 2_000


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with PostgresServer() as pg:
        seed_catalogue(pg.dsn, products=ROWS)
        yield pg


@pytest.fixture
def fresh_server() -> Iterator[PostgresServer]:
    # For tests that change the schema: the module server's tables stay as seeded.
    with PostgresServer() as pg:
        seed_catalogue(pg.dsn, products=200, categories=10)
        yield pg


def _query(dsn: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(to_libpq_url(dsn))
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement, params)
            return list(cur.fetchall())
    finally:
        conn.close()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces: split after it.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_reader_connects_over_tcp_and_cannot_write(server: PostgresServer) -> None:
    reader = to_libpq_url(server.reader_dsn)
    conn = psycopg2.connect(reader)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT inet_server_addr()::text, inet_server_port(), current_user")
            assert cur.fetchone() == ("127.0.0.1/32", server.port, READER_ROLE)
            cur.execute("SELECT count(*) FROM products")
            assert cur.fetchone() == (ROWS,)
        conn.rollback()
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
            cur.execute("UPDATE products SET stock = 0 WHERE id = 1")
        conn.rollback()
        # Without the read-only session default, privileges still refuse every write.
        for statement in (
            "UPDATE products SET stock = 0 WHERE id = 1",
            "DELETE FROM categories",
            "CREATE TABLE sneaky (id int)",
            "CREATE TEMP TABLE sneaky (id int)",
        ):
            with conn.cursor() as cur:
                cur.execute("SET TRANSACTION READ WRITE")
                with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                    cur.execute(statement)
            conn.rollback()
    finally:
        conn.close()
    wrong = reader.replace(f":{server.dlt_credentials()['password']}@", ":wrong@")
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(wrong)


def test_credentials_work_and_stay_out_of_repr(server: PostgresServer) -> None:
    credentials = server.dlt_credentials()
    assert credentials["drivername"] == "postgresql+psycopg2"
    assert (credentials["host"], credentials["port"]) == ("127.0.0.1", server.port)
    assert (credentials["username"], credentials["database"]) == (READER_ROLE, "shop")
    url = sa.engine.URL.create(
        drivername=str(credentials["drivername"]),
        username=str(credentials["username"]),
        password=str(credentials["password"]),
        host=str(credentials["host"]),
        port=int(credentials["port"]),
        database=str(credentials["database"]),
    )
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM categories")).scalar_one() == 40
    finally:
        engine.dispose()
    assert server.dsn != server.reader_dsn
    assert str(credentials["password"]) not in repr(server)
    assert len(str(credentials["password"])) >= 24


def test_connectorx_reads_over_tcp(server: PostgresServer) -> None:
    import connectorx as cx

    table = cx.read_sql(
        to_libpq_url(server.reader_dsn),
        "SELECT id, price FROM products ORDER BY id LIMIT 3",
        return_type="arrow",
    )
    assert table.column("id").to_pylist() == [1, 2, 3]


def test_seeding_is_deterministic(server: PostgresServer) -> None:
    expected_products = table_checksum(server.reader_dsn, "products")
    expected_categories = table_checksum(server.reader_dsn, "categories")
    with PostgresServer() as other:
        seed_catalogue(other.dsn, products=ROWS)
        assert table_checksum(other.dsn, "products") == expected_products
        assert table_checksum(other.dsn, "categories") == expected_categories
        seed_catalogue(other.dsn, products=ROWS, seed=8)
        assert table_checksum(other.dsn, "products") != expected_products


def test_seeded_types_and_values(server: PostgresServer) -> None:
    columns = dict(
        _query(
            server.dsn,
            "SELECT column_name, format_type(atttypid, atttypmod) FROM information_schema.columns"
            " JOIN pg_attribute ON attrelid = 'products'::regclass AND attname = column_name"
            " WHERE table_name = 'products'",
        )
    )
    assert columns["price"] == "numeric(12,2)"
    assert columns["updated_at"] == "timestamp with time zone"
    assert columns["attributes"] == "jsonb"
    assert columns["tags"] == "text[]"
    assert columns["currency"] == "character(3)"
    indexes = [row[0] for row in _query(server.dsn, "SELECT indexdef FROM pg_indexes")]
    assert any("products USING btree (updated_at)" in index for index in indexes)

    rows = fetch_table(server.reader_dsn, "products")
    assert [row["id"] for row in rows] == list(range(1, ROWS + 1))
    assert all(row["price"].as_tuple().exponent == -2 for row in rows)
    assert {row["currency"] for row in rows} >= {"EUR", "USD", "JPY", "DKK"}
    assert all(row["updated_at"].tzinfo is not None for row in rows)
    assert all(row["updated_at"] >= row["created_at"] >= SEED_EPOCH for row in rows)
    assert any(row["created_at"].microsecond for row in rows)
    attributes = [row["attributes"] for row in rows]
    assert {} in attributes
    assert [] in attributes
    assert None in attributes
    assert any(isinstance(a, dict) and a.get("warrantyYears", 0) is None for a in attributes)
    assert any(isinstance(a, dict) and {"mixedCase", "MixedCase"} <= a.keys() for a in attributes)
    assert any(isinstance(a, dict) and isinstance(a.get("nested"), dict) for a in attributes)
    tags = [row["tags"] for row in rows]
    assert None in tags
    assert [] in tags
    assert any(tag_list and "with,comma" in tag_list for tag_list in tags)
    assert any(row["description"] is None for row in rows)
    assert any(not row["name"].isascii() for row in rows)
    deleted = [row for row in rows if row["deleted_at"] is not None]
    assert 0 < len(deleted) < ROWS // 10
    assert not any(row["active"] for row in deleted)
    # Bulk updates: many rows share one updated_at exactly.
    stamps = [row["updated_at"] for row in rows]
    assert max(stamps.count(stamp) for stamp in set(stamps)) > 5


def test_trigger_bumps_updated_at(server: PostgresServer) -> None:
    before = datetime.now(UTC)
    bumped = _query(server.dsn, "UPDATE products SET stock = stock + 1 WHERE id = 11 RETURNING updated_at")[
        0
    ][0]
    assert before <= bumped <= datetime.now(UTC)
    forced = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    kept = _query(
        server.dsn, "UPDATE products SET updated_at = %s WHERE id = 11 RETURNING updated_at", (forced,)
    )[0][0]
    assert kept == forced
    category = _query(
        server.dsn, "UPDATE categories SET name = name || '!' WHERE id = 3 RETURNING updated_at"
    )[0][0]
    assert category >= before


def test_mutations_touch_updated_at(server: PostgresServer) -> None:
    mutator = CatalogueMutator(server.dsn)
    start = datetime.now(UTC)

    new_ids = mutator.insert_products(5)
    assert len(new_ids) == 5
    assert min(new_ids) > ROWS
    by_id = {row["id"]: row for row in fetch_table(server.reader_dsn, "products")}
    assert all(by_id[i]["updated_at"] >= start and by_id[i]["deleted_at"] is None for i in new_ids)
    assert len({by_id[i]["sku"] for i in new_ids}) == 5

    updated = mutator.update_products(10)
    assert len(updated) == 10
    after = {row["id"]: row for row in fetch_table(server.reader_dsn, "products")}
    for i in updated:
        assert after[i]["updated_at"] >= start
        assert after[i]["price"] != by_id[i]["price"]

    same = mutator.update_products([21, 22, 23], same_timestamp=True)
    stamps = {r[0] for r in _query(server.dsn, "SELECT updated_at FROM products WHERE id IN (21, 22, 23)")}
    assert same == [21, 22, 23]
    assert len(stamps) == 1
    assert stamps.pop() >= start

    deleted = mutator.soft_delete_products([30, 31])
    assert deleted == [30, 31]
    assert mutator.soft_delete_products([30]) == []  # already deleted: left alone
    rows = _query(server.dsn, "SELECT deleted_at, active, updated_at FROM products WHERE id = 30")
    deleted_at, active, updated_at = rows[0]
    assert deleted_at >= start
    assert active is False
    assert updated_at >= start

    exact = datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
    mutator.hard_set_updated_at([40, 41], exact)
    mutator.hard_set_updated_at([40], exact)  # the same value again is kept, not bumped
    assert _query(server.dsn, "SELECT DISTINCT updated_at FROM products WHERE id IN (40, 41)") == [(exact,)]
    with pytest.raises(ValueError, match="timezone-aware"):
        mutator.hard_set_updated_at([40], datetime(2024, 6, 1))


def test_drift_helpers(fresh_server: PostgresServer) -> None:
    mutator = CatalogueMutator(fresh_server.dsn)
    before = {row["id"]: row for row in fetch_table(fresh_server.dsn, "products")}
    start = datetime.now(UTC)

    mutator.add_column("products", "ean", "text", "'EAN-' || id")
    rows = fetch_table(fresh_server.reader_dsn, "products")  # the reader sees the new column
    assert all(row["ean"] == f"EAN-{row['id']}" for row in rows)
    assert all(row["updated_at"] >= start for row in rows)

    stamps = {row["id"]: row["updated_at"] for row in rows}
    mutator.add_column("products", "region", "text", "'EU'", touch_updated_at=False)
    mutator.add_column("products", "empty", "integer")
    mutator.alter_column_type("products", "price", "numeric(14, 4)")
    mutator.alter_column_type("products", "stock", "text", "stock::text || ' pcs'")
    rows = fetch_table(fresh_server.reader_dsn, "products")
    assert {row["id"]: row["updated_at"] for row in rows} == stamps
    assert all(row["region"] == "EU" and row["empty"] is None for row in rows)
    for row in rows:
        assert row["price"] == before[row["id"]]["price"]
        assert row["price"].as_tuple().exponent == -4
        assert row["stock"] == f"{before[row['id']]['stock']} pcs"
    # Reseeding restores the original schema.
    seed_catalogue(fresh_server.dsn, products=10, categories=2)
    assert "ean" not in fetch_table(fresh_server.dsn, "products")[0]


def test_stop_leaves_no_process() -> None:
    server = PostgresServer().start()
    pid, port, data_dir = server.pid, server.port, server.data_dir
    children = _children(pid)
    assert children, "a running postmaster has background workers"
    server.stop()
    server.stop()  # idempotent
    assert not _alive(pid)
    assert not [child for child in children if _alive(child)]
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    assert not data_dir.exists()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.dsn


def test_data_dir_is_kept_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    with PostgresServer(data_dir) as first:
        seed_catalogue(first.dsn, products=10, categories=2)
        old_password = str(first.dlt_credentials()["password"])
    assert (data_dir / "PG_VERSION").exists()
    with PostgresServer(data_dir) as second:
        assert len(fetch_table(second.reader_dsn, "products")) == 10
        # Passwords are new for every start.
        new_password = str(second.dlt_credentials()["password"])
        assert new_password != old_password
        old = to_libpq_url(second.reader_dsn).replace(new_password, old_password)
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(old)


def test_command_line_serves_until_terminated(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox.postgres",
            "--products",
            "50",
            "--credentials-file",
            str(credentials),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        output = []
        for line in process.stdout:
            output.append(line)
            if line.startswith("serving"):
                break
        port = int(next(line for line in output if line.startswith("host=")).split("port=")[1].split()[0])
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        assert oct(credentials.stat().st_mode & 0o777) == "0o600"
        password = json.loads(credentials.read_text())["dlt_credentials"]["password"]
        process.send_signal(signal.SIGTERM)
        # A hang guard, not a speed target: longer than the server's own escalation (fast shutdown
        # for `_STOP_TIMEOUT_S`, then immediate), which a loaded CI machine has needed.
        rest, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert password not in "".join(output) + rest
    assert "database=shop" in "".join(output)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
