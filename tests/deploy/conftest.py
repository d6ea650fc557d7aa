"""A real Prefect server on loopback, the repository deployed to it, and a webhook receiver.

The server is `prefect server start` in a subprocess with its own PREFECT_HOME (so its own SQLite
database), on a free port, with the scheduler off: the deployments keep their schedules, but no run
is created on its own while a worker polls. Everything here runs offline.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
WORK_POOL = "data-pipelines"
GIT_TOKEN_BLOCK = "data-pipelines-git-token"
STARTUP_TIMEOUT_SECONDS = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrefectServer:
    """A running server: its API URL and how to talk to it (REST, or the CLI in a subprocess)."""

    api_url: str
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        """This process's environment pointed at the server (no other Prefect settings leak in)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_API_URL=self.api_url,
            PREFECT_HOME=str(self.home / "client"),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
        )
        env.update(extra)
        return env

    def cli(
        self, *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 120
    ) -> str:
        """Run `prefect <args>`; fail the test with its output if it fails."""
        result = subprocess.run(
            [sys.executable, "-m", "prefect", "--no-prompt", *args],
            cwd=cwd,
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, f"prefect {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = requests.post(f"{self.api_url}{path}", json=body or {}, timeout=30)
        response.raise_for_status()
        return response.json()

    def get(self, path: str) -> Any:
        response = requests.get(f"{self.api_url}{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def flow_run(self, flow_run_id: str) -> dict[str, Any]:
        return self.get(f"/flow_runs/{flow_run_id}")  # type: ignore[no-any-return]

    def logs(self, flow_run_id: str) -> list[str]:
        logs = self.post("/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200})
        return [log["message"] for log in logs]

    def wait_for_final_state(self, flow_run_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.flow_run(flow_run_id)
            if run["state"]["type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
                return run
            assert time.monotonic() < deadline, f"flow run still {run['state']['name']} after {timeout} s"
            time.sleep(0.25)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        # The alert links to the run: the UI's address (the API's server, without /api).
        PREFECT_UI_URL=url,
        PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",
        PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED="false",
    )
    log = (home / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            assert server.poll() is None, (home / "server.log").read_text()[-3000:]
            try:
                if requests.get(f"{url}/api/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the Prefect server did not start"
            time.sleep(0.25)
        yield PrefectServer(api_url=f"{url}/api", home=home)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@dataclass(frozen=True)
class Snapshot:
    """The working tree committed into a repository of its own: what CI's checkout would hold."""

    path: Path
    commit: str


def _git(*args: str, cwd: Path) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return result.stdout.strip()


@pytest.fixture(scope="session")
def code_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """Tracked and new (not ignored) files, uncommitted changes included, as one commit.

    Its `origin` is itself, so prefect.yaml's pull step clones it as a worker would clone GitHub.
    """
    repo = tmp_path_factory.mktemp("snapshot") / "data-pipelines"
    repo.mkdir()
    listed = _git("ls-files", "--cached", "--others", "--exclude-standard", "-z", cwd=ROOT)
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a deleted but still tracked file is skipped
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    _git("init", "--quiet", cwd=repo)
    _git("add", "--all", cwd=repo)
    _git("commit", "--quiet", "--no-verify", "-m", "snapshot for the deployment test", cwd=repo)
    _git("remote", "add", "origin", str(repo), cwd=repo)
    return Snapshot(path=repo, commit=_git("rev-parse", "HEAD", cwd=repo))


@pytest.fixture(scope="session")
def deployed(prefect_server: PrefectServer, code_snapshot: Snapshot) -> Snapshot:
    """`prefect deploy --all` from the snapshot, after the one-off setup prefect.yaml expects."""
    prefect_server.cli("work-pool", "create", WORK_POOL, "--type", "process")
    # The repository needs no token here; production stores a read-only one in this block.
    script = f"from prefect.blocks.system import Secret; Secret(value='').save({GIT_TOKEN_BLOCK!r})"
    subprocess.run([sys.executable, "-c", script], env=prefect_server.env(), check=True, timeout=60)
    prefect_server.cli("deploy", "--all", cwd=code_snapshot.path)
    return code_snapshot


@dataclass
class WebhookReceiver:
    """A Slack-compatible incoming webhook on loopback that records what it is sent."""

    server: ThreadingHTTPServer
    hook_path: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{self.hook_path}"

    def received(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.messages)

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()

    def wait_for(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.received()) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.received()


@pytest.fixture(scope="module")
def webhook() -> Iterator[WebhookReceiver]:
    holder: list[WebhookReceiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            receiver = holder[0]
            with receiver.lock:
                receiver.messages.append({"path": self.path, "payload": json.loads(body)})
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok")  # what Slack answers

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # Slack's incoming-webhook URLs carry their secret in the path, like this one.
    receiver = WebhookReceiver(server=server, hook_path="/services/T0SANDBOX/B0SANDBOX/sandboxhookpath")
    holder.append(receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()
    thread.join()
