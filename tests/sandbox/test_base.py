"""The one start/stop contract and the one HTTP server base every stand-in is built on."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from sandbox import Sandbox
from sandbox.aws import AwsSandbox
from sandbox.base import HttpStandIn, StandIn
from sandbox.frankfurter import FrankfurterServer
from sandbox.hubspot import CONTACTS_PATH, HubSpotServer
from sandbox.postgres import PostgresServer, TablesStandIn
from sandbox.records_api import RecordsApiServer

TOKEN = "made-up-sandbox-token"  # pragma: allowlist secret - made up for the test


@pytest.fixture
def api() -> Iterator[RecordsApiServer]:
    with RecordsApiServer(records=30, token=TOKEN) as server:
        yield server


def get(server: HttpStandIn, path: str = "/records", token: str | None = TOKEN) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(server.base_url + path, headers=headers, timeout=10)


def refused(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_every_stand_in_keeps_the_one_contract() -> None:
    for http in (FrankfurterServer, HubSpotServer, RecordsApiServer, AwsSandbox):
        assert issubclass(http, HttpStandIn), http
    for other in (PostgresServer, TablesStandIn, Sandbox):
        assert issubclass(other, StandIn), other


def test_start_returns_the_stand_in_on_a_free_port_and_stop_is_idempotent() -> None:
    first, second = RecordsApiServer().start(), RecordsApiServer().start()
    try:
        assert first.port != second.port
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", first.base_url)
        with pytest.raises(RuntimeError, match="already running"):
            first.start()
    finally:
        first.stop()
        second.stop()
    first.stop()
    assert not first.running
    with pytest.raises(RuntimeError, match="not running"):
        _ = first.base_url


def test_a_failed_start_releases_what_it_took() -> None:
    class Broken(RecordsApiServer):
        def _start(self) -> None:
            super()._start()
            self.bound = self.port
            raise OSError("the seed data could not be made")

    broken = Broken()
    with pytest.raises(OSError, match="seed data"):
        broken.start()

    assert not broken.running
    assert refused(broken.bound)


def test_every_http_stand_in_gets_faults_and_the_request_log(api: RecordsApiServer) -> None:
    api.inject_fault("rate_limit", retry_after=1.5, path_prefix="/records")
    api.inject_fault("disconnect")
    api.inject_fault("malformed")

    throttled = get(api)
    with pytest.raises(requests.ConnectionError):
        get(api)
    malformed = get(api)
    fine = get(api)

    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "2"
    assert throttled.json() == {"error": "Too Many Requests"}  # the API's own error body
    assert malformed.status_code == 200
    with pytest.raises(ValueError, match=r"."):
        malformed.json()
    assert len(fine.json()["data"]) == 30
    assert [(r.status, r.retry_after) for r in api.requests] == [
        (429, 2.0),
        (0, None),
        (200, None),
        (200, None),
    ]
    assert api.pending_faults() == 0


def test_authentication_comes_before_faults_where_the_real_api_says_so() -> None:
    with HubSpotServer(token=TOKEN, contacts=5) as hubspot:
        hubspot.inject_fault("error", status=503)
        unauthorised = get(hubspot, CONTACTS_PATH, token=None)
        pending = hubspot.pending_faults()
        failed = get(hubspot, CONTACTS_PATH)

    assert unauthorised.status_code == 401
    assert pending == 1
    assert failed.status_code == 503
    assert failed.json()["category"] == "INTERNAL_ERROR"


@pytest.mark.parametrize(
    ("module", "options"),
    [("sandbox.frankfurter", []), ("sandbox.hubspot", ["--contacts", "5", "--token", TOKEN])],
)
def test_servers_run_as_scripts_stop_cleanly_on_sigterm(module: str, options: list[str]) -> None:
    process = subprocess.Popen([sys.executable, "-m", module, *options], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline().strip().split(":")[-1].split("/")[0])
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 0  # stopped through its context manager, not killed by the signal
    assert refused(port)
