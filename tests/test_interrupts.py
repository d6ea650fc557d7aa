"""Stopping a test run leaves no server behind: SIGTERM or Ctrl-C, with and without pytest-xdist.

A small suite holds this suite's session fixtures (PostgreSQL from `postgres_server`, Prefect's
test harness) and sleeps; it is stopped while its tests run, and then none of its servers may be
left. Without `tests/interrupts.py`, SIGTERM ends pytest without teardown and both stay up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.interrupts import stop_group

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

HOLDING_SUITE = """
import json, os, time
from pathlib import Path

import pytest
from prefect.server.api.server import SubprocessASGIServer
from prefect.testing.utilities import prefect_test_harness

MARKS = Path(os.environ["HOLDING_MARKS"])


@pytest.fixture(scope="session")
def harness():
    with prefect_test_harness(server_startup_timeout=180):
        yield SubprocessASGIServer._instances[None]


@pytest.mark.parametrize("n", [pytest.param(0, marks=pytest.mark.xdist_group("a")), pytest.param(1, marks=pytest.mark.xdist_group("b"))])
def test_holds_servers(n, postgres_server, harness):
    servers = {"postgres": postgres_server._process.pid, "prefect": harness.server_process.pid}
    (MARKS / f"{os.getpid()}-{n}.json").write_text(json.dumps(servers))
    time.sleep(900)
"""


def running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize(
    ("workers", "how"),
    [("0", "SIGTERM to pytest"), ("2", "SIGTERM to pytest"), ("2", "Ctrl-C in the terminal")],
)
@pytest.mark.timeout(1200)
def test_stopping_a_run_stops_every_server_it_started(tmp_path: Path, workers: str, how: str) -> None:
    suite = tmp_path / "test_holding.py"
    suite.write_text(HOLDING_SUITE)
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PYTEST_"))}
    env["HOLDING_MARKS"] = str(marks)
    # This suite's fixtures and hooks, as a plugin of the holding suite's own root conftest.
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["tests.conftest"]\n')
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", workers]
    command += ["--dist", "loadgroup", "--rootdir", str(tmp_path), str(suite)]
    # Its own session, as a terminal's foreground job: Ctrl-C signals the whole group.
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    servers: list[int] = []
    left: list[int] = []
    try:
        expected = 1 if workers == "0" else 2
        deadline = time.monotonic() + 600
        while len(list(marks.glob("*.json"))) < expected:
            assert process.poll() is None, process.communicate()[0].decode()[-3000:]
            assert time.monotonic() < deadline, "the holding suite did not start its servers"
            time.sleep(0.5)
        servers = [pid for mark in marks.glob("*.json") for pid in json.loads(mark.read_text()).values()]
        assert servers and all(running(pid) for pid in servers)

        if how == "SIGTERM to pytest":
            process.send_signal(signal.SIGTERM)
        else:
            os.killpg(process.pid, signal.SIGINT)
        output = process.communicate(timeout=180)[0].decode()
        deadline = time.monotonic() + 10
        while any(running(pid) for pid in servers) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [pid for pid in servers if running(pid)]
    finally:
        stop_group(process, grace=120)
        for pid in filter(running, servers):  # never leave them to the next test
            os.kill(pid, signal.SIGKILL)

    assert process.returncode != 0, output[-3000:]
    assert left == [], output[-3000:]
