"""Fixtures shared by the whole suite: the sandbox servers and an isolated dlt environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dlt.common.configuration.container import Container
from dlt.common.pipeline import PipelineContext

from sandbox.aws import AwsSandbox
from sandbox.frankfurter import FrankfurterServer
from sandbox.postgres import CatalogueMutator, PostgresServer, seed_catalogue


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
    # dlt remembers the last pipeline used in this process; a resource iterated outside a pipeline
    # would read that pipeline's incremental state, so every test starts with none active.
    context = Container()[PipelineContext]
    if context.is_active():
        context.deactivate()
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    monkeypatch.setenv("DLT__DESTINATION", "duckdb")
    # Unset, the environment is `local` (DuckDB only); tests that remove DLT__DESTINATION to load
    # into a pipeline's production destination (fakesnow, moto's S3) get it, with the vault off.
    monkeypatch.setenv("DLT__ENVIRONMENT", "production")
    monkeypatch.setenv("VAULT__ENABLED", "false")
    monkeypatch.setenv("LOCAL__DUCKDB_PATH", str(warehouse))
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.05")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_RETRY_DELAY", "2")
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "5")


# -- exchange_rates: the S3 landing bucket and a rates API with a fixed last published day ----------


@pytest.fixture(scope="session")
def aws_sandbox() -> Iterator[AwsSandbox]:
    """moto's S3 on loopback for the session (its state is process-wide anyway)."""
    with AwsSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def landing_bucket(aws_sandbox: AwsSandbox, monkeypatch: pytest.MonkeyPatch) -> AwsSandbox:
    """The landing bucket, emptied, with boto3 and dlt's filesystem destination pointed at it."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in aws_sandbox.env().items():
        monkeypatch.setenv(name, value)
    s3 = aws_sandbox.boto3_client("s3")
    for key in aws_sandbox.list_objects():
        s3.delete_object(Bucket=aws_sandbox.bucket, Key=key)
    return aws_sandbox


@pytest.fixture
def rates_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FrankfurterServer]:
    """A Frankfurter API of its own (tests move its `today`), exchange_rates pointed at it.

    It publishes through `RATES_TODAY` and the backfill starts at `RATES_START`, a few months
    earlier, so a test loads a few thousand rows rather than all history.
    """
    from tests.snowflake.snowpipe_emulator import RATES_START, RATES_TODAY

    with FrankfurterServer(today=RATES_TODAY) as server:
        monkeypatch.setenv("SOURCES__EXCHANGE_RATES__BASE_URL", server.base_url)
        monkeypatch.setenv("SOURCES__EXCHANGE_RATES__START_DATE", RATES_START.isoformat())
        yield server


# --- products: a real PostgreSQL --------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (from the pgserver wheel, on a free TCP port)."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def catalogue(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> CatalogueMutator:
    """A freshly seeded catalogue (2,000 products), with the products source pointed at it.

    The source connects as the read-only role, as in production; the mutator writes as the owner.
    """
    seed_catalogue(postgres_server.dsn, products=CATALOGUE_SIZE)
    for key, value in postgres_server.dlt_credentials().items():
        monkeypatch.setenv(f"SOURCES__PRODUCTS__CREDENTIALS__{key.upper()}", str(value))
    return CatalogueMutator(postgres_server.dsn)


CATALOGUE_SIZE = 2_000
