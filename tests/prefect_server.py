"""A real `prefect server start` in a subprocess, and waiting for a child process to be ready.

One copy of what the deployment, alert and server-restart tests and `bench/flows.py` need: the
server with its own PREFECT_HOME (so its own SQLite database) on a free loopback port, started
in its own session so that stopping it stops all of it, and polled until `/api/health` answers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.interrupts import stop_group

# A busy 2-core machine has needed over 90 s to start a Prefect server.
STARTUP_TIMEOUT_SECONDS = 240.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    ready: Callable[[], bool], *, process: subprocess.Popen[Any], log: Path, timeout: float, what: str
) -> None:
    """Poll `ready` every 0.25 s until it holds.

    Raises:
        RuntimeError: `process` exited first (with the end of its `log`).
        TimeoutError: `timeout` seconds passed first.
    """
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{tail}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not start within {timeout:.0f} s")
        time.sleep(0.25)


class PrefectRestApi:
    """Prefect's REST API at `self.api_url`, read and written with plain JSON."""

    api_url: str

    def get(self, path: str) -> Any:
        response = requests.get(f"{self.api_url}{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = requests.post(f"{self.api_url}{path}", json=body or {}, timeout=30)
        response.raise_for_status()
        return response.json()

    def logs(self, flow_run_id: str) -> list[str]:
        """The flow run's log messages (its tasks' included), oldest first."""
        logs = self.post("/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200})
        return [log["message"] for log in logs]


@dataclass
class PrefectServerProcess(PrefectRestApi):
    """`prefect server start` on `port` with its own `home`; `start()` returns once it answers.

    The port and home stay the same across `stop()` and `start()`, so a restart keeps the
    database. `settings` are extra PREFECT_* variables for the server (scheduler off, ...); no
    other PREFECT_* variable of this process leaks in. The log goes to `home/server.log`.
    """

    home: Path
    settings: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    startup_timeout: float = STARTUP_TIMEOUT_SECONDS
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's root (the UI's address)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """What PREFECT_API_URL is set to for clients."""
        return f"{self.url}/api"

    @property
    def log(self) -> Path:
        return self.home / "server.log"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_UI_ENABLED="false",
        )
        env.update(self.settings)
        with self.log.open("ab") as log:
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
        try:
            wait_until(
                self.healthy,
                process=self.process,
                log=self.log,
                timeout=self.startup_timeout,
                what="the Prefect server",
            )
        except BaseException:
            self.stop()
            raise

    def healthy(self) -> bool:
        try:
            return requests.get(f"{self.api_url}/health", timeout=1).ok
        except requests.RequestException:  # not listening yet, or too busy to answer
            return False

    def stop(self, grace: float = 20) -> None:
        """SIGTERM to the server's process group, SIGKILL after `grace` seconds."""
        if self.process is not None and self.process.poll() is None:
            stop_group(self.process, grace)

    def __enter__(self) -> PrefectServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
