"""Fixtures shared by the whole suite: the sandbox servers and an isolated dlt environment.

Also how the suite runs in parallel (pytest-xdist, `--dist loadgroup`) and stops cleanly: tests
that share one expensive session server are kept on one worker (`XDIST_GROUPS`), and SIGTERM or
Ctrl-C tears every fixture down, so no server outlives the run (`tests/interrupts.py`).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from dlt.common.configuration.container import Container
from dlt.common.pipeline import PipelineContext

from sandbox.aws import AwsSandbox
from sandbox.frankfurter import FrankfurterServer
from sandbox.postgres import CatalogueMutator, PostgresServer, seed_catalogue
from sandbox.standins import currencies, exchange_rates
from tests import interrupts

# Prefect keeps its settings and a SQLite database under PREFECT_HOME (default ~/.prefect). Each test
# process gets its own, so parallel workers and other runs on the machine do not lock each other out.
if os.environ.get("PREFECT_HOME") in (None, os.environ.get("TESTS_PREFECT_HOME")):
    os.environ["PREFECT_HOME"] = os.environ["TESTS_PREFECT_HOME"] = tempfile.mkdtemp(prefix="pytest-prefect-")
    atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)

# Test paths (relative to tests/) whose tests share one session-scoped server and so run on one
# xdist worker. Prefect's test harness: two in one process hang, and each start costs 10-30 s here.
XDIST_GROUPS = {
    "flows/": "prefect-harness",
    "test_no_secret_leaks.py": "prefect-harness",
    "deploy/": "prefect-server",
}
# Slow end-to-end tests carry `@pytest.mark.slow` (or a module's `pytestmark`) where they are written,
# so a renamed or moved test keeps its marker; `./dev test` skips them and `./dev test-slow` (run by
# `.ci/run` and CI after `./dev test`) runs them. Every test in these end-to-end files (relative to
# tests/: a folder or a file) must be marked, or collection stops naming the test.
END_TO_END = (
    "deploy/",  # a real Prefect server: `prefect deploy`, process workers, alerts, generated pipelines
    "test_main_job.py",  # the main job as a subprocess: the sandbox and every flow, twice
    "test_interrupts.py",  # pytest runs interrupted in subprocesses
    "operations/",  # Prefect servers restarted under a running flow
)
TESTS = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    # xdist gives its workers `workerinput`; the environment variable may be inherited by a nested run.
    worker = hasattr(config, "workerinput")
    controller = not worker and config.getoption("dist", "no") != "no"
    interrupts.install(xdist_controller=controller, xdist_worker=worker)


def pytest_unconfigure(config: pytest.Config) -> None:
    interrupts.note_teardown_done()
    interrupts.finish()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse unmarked end-to-end tests, group tests sharing a session server (before `-m` and xdist)."""
    unmarked = unmarked_end_to_end(items, TESTS)
    if unmarked:
        raise pytest.UsageError(
            "end-to-end tests must be marked slow (`pytestmark = pytest.mark.slow` or "
            f"`@pytest.mark.slow`): {', '.join(unmarked)}"
        )
    for item in items:
        relative = _relative(item, TESTS)
        if relative is None:
            continue
        for prefix, group in XDIST_GROUPS.items():
            if relative.startswith(prefix) and not item.get_closest_marker("xdist_group"):
                item.add_marker(pytest.mark.xdist_group(group))


def _relative(item: pytest.Item, root: Path) -> str | None:
    try:
        return item.path.resolve().relative_to(root).as_posix()
    except ValueError:
        return None


def unmarked_end_to_end(items: list[pytest.Item], root: Path) -> list[str]:
    """Node ids of the tests in `END_TO_END` files (relative to `root`) without the `slow` marker."""
    return [
        item.nodeid
        for item in items
        if (relative := _relative(item, root)) is not None
        and relative.startswith(END_TO_END)
        and item.get_closest_marker("slow") is None
    ]


@pytest.fixture(scope="session")
def frankfurter_server() -> Iterator[FrankfurterServer]:
    """The currencies stand-in for the session (starting it per test would be wasted time)."""
    with currencies.StandIn() as server:
        yield server


@pytest.fixture
def frankfurter(
    frankfurter_server: FrankfurterServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FrankfurterServer]:
    """The API with no faults, a clean request log and the original data; sources point at it."""
    original = dict(frankfurter_server.currencies)
    frankfurter_server.clear_faults()
    frankfurter_server.reset_requests()
    for key, value in frankfurter_server.env().items():
        monkeypatch.setenv(key, value)
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

    with exchange_rates.StandIn(today=RATES_TODAY) as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
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
    for key, value in postgres_server.source_env("products").items():
        monkeypatch.setenv(key, value)
    return CatalogueMutator(postgres_server.dsn)


CATALOGUE_SIZE = 2_000
