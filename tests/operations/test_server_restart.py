"""A Prefect server restart under a running flow must not leave its pipeline locked for good.

A real `prefect server start` in a subprocess, with a SQLite database in its own PREFECT_HOME that
survives the restart, and the currencies flow run in subprocesses against it, as a worker would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from flows.lock import lock_name
from sandbox.frankfurter import FrankfurterServer
from tests.deploy.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_SECONDS = 300
# The first run's API call hangs this long: past the lease renewal (at 45 s) that follows the restart.
SLOW_REQUEST_SECONDS = 50


@dataclass
class RestartableServer:
    """`prefect server start` on a fixed port and PREFECT_HOME, so a restart keeps its database."""

    home: Path
    lease_storage: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_UI_ENABLED="false",
            PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",
            PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED="false",
            PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE=f"prefect.server.concurrency.lease_storage.{self.lease_storage}",
        )
        with (self.home / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "prefect",
                    "server",
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            assert self.process.poll() is None, (self.home / "server.log").read_text()[-3000:]
            try:
                if requests.get(f"{self.api_url}/health", timeout=1).ok:
                    return
            except requests.RequestException:  # not listening yet, or too busy to answer
                pass
            assert time.monotonic() < deadline, "the Prefect server did not start"
            time.sleep(0.25)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def get(self, path: str) -> Any:
        response = requests.get(f"{self.api_url}{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = requests.post(f"{self.api_url}{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def active_slots(self, limit: str) -> int:
        return int(self.get(f"/v2/concurrency_limits/{limit}")["active_slots"])

    def flow_runs(self) -> list[dict[str, Any]]:
        return list(self.post("/flow_runs/filter", {"sort": "EXPECTED_START_TIME_ASC"}))

    def logs(self, flow_run_id: str) -> list[str]:
        logs = self.post("/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200})
        return [log["message"] for log in logs]


@pytest.fixture(params=["memory", "filesystem"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RestartableServer]:
    """Prefect's default lease storage (in memory), and the one that keeps leases on disk."""
    home = tmp_path / "prefect-server"
    home.mkdir()
    server = RestartableServer(home=home, lease_storage=request.param)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _flow_env(server: RestartableServer, frankfurter: FrankfurterServer, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_API_URL=server.api_url,
        PREFECT_HOME=str(tmp_path / "prefect-client"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PYTHONPATH=str(ROOT),
        SOURCES__CURRENCIES__BASE_URL=frankfurter.base_url,
        RUNTIME__REQUEST_TIMEOUT=str(SLOW_REQUEST_SECONDS + 60),
    )
    return env


def _run_flow(env: dict[str, str], lock_wait_seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("run_currencies_flow.py")), str(lock_wait_seconds)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_after_a_server_restart_under_a_running_flow_the_next_run_completes(
    server: RestartableServer, frankfurter: FrankfurterServer, tmp_path: Path
) -> None:
    limit = lock_name("currencies")
    env = _flow_env(server, frankfurter, tmp_path)
    frankfurter.inject_fault("slow", times=1, path_prefix="/v1/currencies", delay=SLOW_REQUEST_SECONDS)
    first = _run_flow(env, lock_wait_seconds=60)
    try:
        deadline = time.monotonic() + 300
        while not (frankfurter.request_count("/v1/currencies") and server.active_slots(limit) == 1):
            assert first.poll() is None, first.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.2)
        # The run holds the lock and waits for the API: restart the server under it.
        server.stop()
        server.start()
        first_output, _ = first.communicate(timeout=SLOW_REQUEST_SECONDS + 180)
        print(first_output[-1500:])
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    [first_run] = server.flow_runs()
    first_state = first_run["state"]["type"]
    orphaned = server.active_slots(limit)
    # Measured, for the README: what the restart did to the first run and to its lock.
    print(f"lease storage {server.lease_storage}: first run {first_state}, lock slots left taken: {orphaned}")

    second = _run_flow(env, lock_wait_seconds=60)
    second_output, _ = second.communicate(timeout=240)
    runs = server.flow_runs()
    assert len(runs) == 2, second_output[-3000:]
    second_run = runs[1]
    assert second_run["state"]["type"] == "COMPLETED", second_output[-5000:]
    assert server.active_slots(limit) == 0  # free again for the run after
    if orphaned:
        # The second run freed the dead holder's slot and said whose it was.
        logs = "\n".join(server.logs(second_run["id"]))
        assert "freeing the lock 'pipeline-currencies'" in logs and first_run["id"] in logs, logs[-3000:]
