"""Fixtures shared by the whole suite: the sandbox servers and an isolated dlt environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.frankfurter import FrankfurterServer


@pytest.fixture(scope="session")
def frankfurter_server() -> Iterator[FrankfurterServer]:
    """One Frankfurter-compatible API for the session (starting it per test would be wasted time)."""
    with FrankfurterServer() as server:
        yield server


@pytest.fixture
def frankfurter(
    frankfurter_server: FrankfurterServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FrankfurterServer]:
    """The API with no faults, a clean request log and the original data; sources point at it."""
    original = dict(frankfurter_server.currencies)
    frankfurter_server.clear_faults()
    frankfurter_server.reset_requests()
    monkeypatch.setenv("SOURCES__CURRENCIES__BASE_URL", frankfurter_server.base_url)
    yield frankfurter_server
    frankfurter_server.clear_faults()
    frankfurter_server.currencies.clear()
    frankfurter_server.currencies.update(original)


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    """Path of the test's own DuckDB file (set as the local destination by `isolated_dlt`)."""
    return tmp_path / "warehouse.duckdb"


@pytest.fixture(autouse=True)
def isolated_dlt(tmp_path: Path, warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own dlt working dir and DuckDB file, loads locally, and retries fast.

    The HTTP retry settings are dlt's own (`runtime` section): fewer, quicker attempts keep fault
    tests short without changing what is retried.
    """
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    monkeypatch.setenv("DLT__DESTINATION", "duckdb")
    monkeypatch.setenv("LOCAL__DUCKDB_PATH", str(warehouse))
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.05")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_RETRY_DELAY", "2")
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "5")
