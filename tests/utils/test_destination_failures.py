"""A destination that cannot be reached, opened or logged in to: one line naming what to check, no secret."""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from pipelines import currencies, products
from sandbox.frankfurter import FrankfurterServer
from sandbox.postgres import CatalogueMutator
from utils.errors import (
    ConfigurationError,
    DestinationUnavailableError,
    PermanentPipelineError,
    PipelineError,
)
from utils.run_engine import is_permanent

CREDENTIALS = "DESTINATION__SNOWFLAKE__CREDENTIALS__"
PASSWORD = f"pw-{secrets.token_hex(8)}"  # made up per run; must never be shown


def closed_loopback_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def unreachable_snowflake(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Snowflake destination pointed at a loopback port nothing listens on."""
    monkeypatch.setenv("DLT__DESTINATION", "snowflake")
    monkeypatch.setenv(f"{CREDENTIALS}HOST", "xy12345.eu-west-1")
    monkeypatch.setenv(f"{CREDENTIALS}DATABASE", "RAW")
    monkeypatch.setenv(f"{CREDENTIALS}USERNAME", "SVC_DLT")
    monkeypatch.setenv(f"{CREDENTIALS}PASSWORD", PASSWORD)
    # The connector's own `host`/`port`/`protocol` arguments, through dlt's credentials query.
    query = (
        f'{{"host": "127.0.0.1", "port": {closed_loopback_port()}, "protocol": "http", "login_timeout": 5}}'
    )
    monkeypatch.setenv(f"{CREDENTIALS}QUERY", query)


def assert_names_the_host_setting(error: BaseException) -> None:
    message = str(error)
    assert isinstance(error, DestinationUnavailableError), repr(error)
    assert not is_permanent(error)  # retried: the network may come back
    assert "Pipeline 'currencies'" in message
    assert "cannot connect to Snowflake" in message, message
    assert "destination.snowflake.credentials.host" in message, message
    assert "DESTINATION__SNOWFLAKE__CREDENTIALS__HOST" in message, message
    assert "\n" not in message
    assert PASSWORD not in message


def test_an_unreachable_snowflake_on_a_first_run_names_the_host_setting(
    frankfurter: FrankfurterServer, unreachable_snowflake: None
) -> None:
    with pytest.raises(DestinationUnavailableError) as caught:
        currencies.run()

    assert_names_the_host_setting(caught.value)
    assert "at the sync step" in str(caught.value)


def test_an_unreachable_snowflake_after_earlier_loads_is_one_line_not_a_traceback(
    frankfurter: FrankfurterServer, monkeypatch: pytest.MonkeyPatch, unreachable_snowflake: None
) -> None:
    # A run that loaded before asks the destination which tables were dropped, before extracting:
    # the connector's own OperationalError escaped from there as a 142-line traceback.
    monkeypatch.setenv("DLT__DESTINATION", "duckdb")
    currencies.run()  # the stored schema now says `currencies` holds data
    monkeypatch.setenv("DLT__DESTINATION", "snowflake")

    with pytest.raises(DestinationUnavailableError) as caught:
        currencies.run()

    assert_names_the_host_setting(caught.value)
    assert "checking the destination for dropped tables" in str(caught.value)


def test_an_unreachable_snowflake_met_by_a_source_is_the_same_one_line(
    catalogue: CatalogueMutator, unreachable_snowflake: None
) -> None:
    # A first products load asks the destination whether each table is empty while its source is
    # built (sources/products/first_load.py), before dlt's sync step: another way to meet it.
    with pytest.raises(DestinationUnavailableError) as caught:
        products.run()

    message = str(caught.value)
    assert message.startswith("Pipeline 'products' failed while talking to the destination: cannot connect")
    assert "destination.snowflake.credentials.host" in message, message
    assert PASSWORD not in message


def test_an_unreachable_filesystem_destination_names_the_bucket_and_endpoint_settings(
    frankfurter: FrankfurterServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = secrets.token_hex(12)  # made up per run; must never be shown
    monkeypatch.setenv("DLT__DESTINATION", "filesystem")
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", "s3://landing")
    monkeypatch.setenv("DESTINATION__FILESYSTEM__CREDENTIALS__AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("DESTINATION__FILESYSTEM__CREDENTIALS__AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("DESTINATION__FILESYSTEM__CREDENTIALS__REGION_NAME", "eu-west-1")
    monkeypatch.setenv(
        "DESTINATION__FILESYSTEM__CREDENTIALS__ENDPOINT_URL", f"http://127.0.0.1:{closed_loopback_port()}"
    )
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")

    with pytest.raises(DestinationUnavailableError) as caught:
        currencies.run()

    message = str(caught.value)
    assert not is_permanent(caught.value)
    assert "cannot connect to the filesystem destination's storage" in message, message
    assert "destination.filesystem.bucket_url and destination.filesystem.credentials.endpoint_url" in message
    assert "\n" not in message
    assert secret not in message


@pytest.fixture
def locked(warehouse: Path) -> Iterator[int]:
    """Another process holding the test's DuckDB file open (as a DuckDB CLI or a second run would)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('open', flush=True); sys.stdin.read()",
            str(warehouse),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait(timeout=10)


@pytest.mark.parametrize("loaded_before", [False, True])
def test_a_duckdb_file_locked_by_another_process_is_one_transient_line_naming_the_file(
    frankfurter: FrankfurterServer, warehouse: Path, loaded_before: bool, request: pytest.FixtureRequest
) -> None:
    if loaded_before:
        currencies.run()
    holder: int = request.getfixturevalue("locked")

    with pytest.raises(DestinationUnavailableError) as caught:
        currencies.run()

    message = str(caught.value)
    assert not isinstance(caught.value, PermanentPipelineError)
    assert f"the DuckDB file '{warehouse}' is in use by process {holder}" in message, message
    assert "Close that connection or wait for the other run to finish" in message
    assert "credentials at all" not in message  # dlt's boilerplate for a connection error
    assert "\n" not in message


def test_a_duckdb_file_that_cannot_be_opened_names_the_file_and_no_credentials_boilerplate(
    frankfurter: FrankfurterServer, warehouse: Path
) -> None:
    currencies.run()
    for leftover in warehouse.parent.glob(f"{warehouse.name}.wal"):
        leftover.unlink()
    warehouse.write_bytes(bytes(8) + b"DUCK" + b"\xff" * 4096)  # passes the header check, then corrupt

    with pytest.raises(PipelineError) as caught:
        currencies.run()

    message = str(caught.value)
    assert f"the DuckDB file '{warehouse}' cannot be opened (Corrupt database file" in message, message
    assert "local.duckdb_path (LOCAL__DUCKDB_PATH)" in message
    assert "credentials at all" not in message and "internet connection" not in message
    assert "\n" not in message


# -- a login Snowflake refuses: permanent, naming the login keys -------------------------------------


@Request.application
def refusing_login(request: Request) -> Response:
    """Snowflake's answer to `POST /session/v1/login-request` with a wrong password (code 390100)."""
    assert request.path == "/session/v1/login-request", request.path
    body = {
        "data": {"nextAction": None, "authnMethod": "USERNAME_PASSWORD"},
        "code": "390100",
        "message": "Incorrect username or password was specified.",
        "success": False,
    }
    return Response(json.dumps(body), content_type="application/json")


@pytest.fixture
def snowflake_refusing_login(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The Snowflake destination pointed at a loopback login endpoint that refuses every login."""
    server = make_server("127.0.0.1", 0, refusing_login, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("DLT__DESTINATION", "snowflake")
    monkeypatch.setenv(f"{CREDENTIALS}HOST", "xy12345.eu-west-1")
    monkeypatch.setenv(f"{CREDENTIALS}DATABASE", "RAW")
    monkeypatch.setenv(f"{CREDENTIALS}USERNAME", "SVC_DLT")
    monkeypatch.setenv(f"{CREDENTIALS}PASSWORD", PASSWORD)
    query = {"host": "127.0.0.1", "port": server.port, "protocol": "http", "login_timeout": 5}
    monkeypatch.setenv(f"{CREDENTIALS}QUERY", json.dumps(query))
    try:
        yield
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_a_refused_snowflake_login_is_permanent_and_names_the_login_keys(
    frankfurter: FrankfurterServer, snowflake_refusing_login: None
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        currencies.run()

    message = str(caught.value)
    assert is_permanent(caught.value)  # a retry sends the same password
    assert message.startswith(
        "Pipeline 'currencies' failed at the sync step: Snowflake refused the login (Incorrect username or "
        "password was specified.). Check destination.snowflake.credentials.username and its "
        "destination.snowflake.credentials.private_key (or destination.snowflake.credentials.password)"
    ), message
    assert PASSWORD not in message
    assert frankfurter.request_count() == 0  # refused before extracting
