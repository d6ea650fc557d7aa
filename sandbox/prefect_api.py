"""The main job's Prefect API server: `prefect server start` in a session of its own, stopped last.

Without `PREFECT_API_URL`, Prefect starts a temporary server as a child in the caller's process
group. Ctrl-C in a terminal signals the whole group, so that server stopped at once - before the
interrupted flow run had reported its crash and before Prefect had shipped its last logs and
events. Those calls then failed with `httpx.ConnectError`, which Prefect's task retries count as
transient: the main job went on retrying a dead server for minutes. This server is not in the
terminal's process group, so Ctrl-C reaches only the main job; the main job stops it after the
flows have ended and Prefect's queued logs and events have been sent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from sandbox.base import HOST, StandIn

# A busy 2-core machine has needed over 90 s to start a Prefect server (tests/prefect_server.py).
STARTUP_TIMEOUT_SECONDS = 240.0
# How long the server has to stop after SIGTERM before it is killed.
STOP_TIMEOUT_SECONDS = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class PrefectApiServer(StandIn):
    """`prefect server start` (API only: no UI, no background services) on a free loopback port.

    It uses the caller's Prefect settings (`PREFECT_HOME` and its database), as Prefect's own
    temporary server does. `start()` waits until `/api/health` answers; `stop()` first sends
    Prefect's queued logs and events, then stops the server's whole process group.

    Args:
        startup_timeout: Seconds to wait for the server to answer.
    """

    def __init__(self, *, startup_timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        super().__init__()
        self.startup_timeout = startup_timeout
        # The server's output (nothing unless something fails), shown if it does not start.
        self.log: Path | None = None
        self._port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        """What `PREFECT_API_URL` must be, e.g. `http://127.0.0.1:54321/api`."""
        return f"http://{HOST}:{self._port}/api"

    @property
    def location(self) -> str:
        """`api_url`."""
        return self.api_url

    def env(self) -> dict[str, str]:
        """`PREFECT_API_URL`, pointing Prefect's client at this server."""
        return {"PREFECT_API_URL": self.api_url}

    def _start(self) -> None:
        self._port = _free_port()
        fd, name = tempfile.mkstemp(prefix="main-job-prefect-", suffix=".log")
        os.close(fd)
        self.log = Path(name)
        command = [sys.executable, "-m", "prefect", "server", "start", "--host", HOST]
        command += ["--port", str(self._port), "--no-ui", "--no-services", "--analytics-off"]
        command += ["--log-level", "WARNING"]
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        with self.log.open("wb") as out:
            # A session of its own: Ctrl-C in the terminal must not reach it (see the module docstring).
            self._process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.startup_timeout
        while not self._healthy():
            exited = self._process.poll() is not None
            if exited or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-2000:]
                what = (
                    f"exited with {self._process.returncode}"
                    if exited
                    else f"did not answer within {self.startup_timeout:.0f} s"
                )
                raise RuntimeError(f"The Prefect server {what}:\n{tail}")
            time.sleep(0.25)

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _stop(self) -> None:
        process, self._process = self._process, None
        if self.log is not None:
            self.log.unlink(missing_ok=True)
            self.log = None
        if process is None:
            return
        try:
            if process.poll() is None:
                ship_prefect_queues()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    @contextlib.contextmanager
    def selected(self) -> Iterator[None]:
        """Point this process's Prefect client at the server while the block runs.

        Both ways Prefect reads it: the settings context (the calling thread) and the environment
        (the threads that ship logs and events, which build their settings from it). Prefect's
        queued logs and events are sent before the block ends, while the server still runs.
        """
        from prefect.settings import PREFECT_API_URL, temporary_settings

        previous = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = self.api_url
        try:
            with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
                try:
                    yield
                finally:
                    ship_prefect_queues()
        finally:
            if previous is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = previous


def ship_prefect_queues() -> None:
    """Send the log lines and events Prefect has queued in this process to the API now."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # flush() drains the process-wide queue, whichever handler calls it
    EventsWorker.drain_all(timeout=STOP_TIMEOUT_SECONDS)
