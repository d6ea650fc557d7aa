"""A real Prefect server on loopback, the repository deployed to it, and a webhook receiver.

The server is `prefect server start` in a subprocess with its own PREFECT_HOME (so its own SQLite
database), on a free port, with the scheduler off: the deployments keep their schedules, but no run
is created on its own while a worker polls. Everything here runs offline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import site
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from sandbox.base import HttpStandIn
from tests.interrupts import stop_group
from tests.prefect_server import PrefectRestApi, PrefectServerProcess, wait_until

ROOT = Path(__file__).resolve().parents[2]
WORK_POOL = "data-pipelines"
GIT_TOKEN_BLOCK = "data-pipelines-git-token"


@dataclass
class PrefectServer(PrefectRestApi):
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

    def flow_run(self, flow_run_id: str) -> dict[str, Any]:
        return self.get(f"/flow_runs/{flow_run_id}")  # type: ignore[no-any-return]

    def run_deployment(self, name: str) -> str:
        """`prefect deployment run <flow>/<deployment>`; the id of the flow run it created."""
        output = self.cli("deployment", "run", name)
        match = re.search(r"UUID: ([0-9a-f-]{36})", output)
        assert match, output
        return match.group(1)

    def wait_for_final_state(self, flow_run_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.flow_run(flow_run_id)
            if run["state"]["type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
                return run
            assert time.monotonic() < deadline, f"flow run still {run['state']['name']} after {timeout} s"
            time.sleep(0.25)


def worker_command(python: str | Path = sys.executable) -> list[str]:
    """A process worker of the work pool that runs one scheduled flow run and exits."""
    return [
        str(python),
        "-m",
        "prefect",
        "worker",
        "start",
        "--pool",
        WORK_POOL,
        "--type",
        "process",
        "--run-once",
    ]


@contextmanager
def running_prefect_server(home: Path) -> Iterator[PrefectServer]:
    """`prefect server start` with its own home (so its own SQLite database) until the block ends.

    The scheduler is off: deployments keep their schedules, but no run is created on its own.
    """
    server = PrefectServerProcess(
        home,
        settings={
            "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
        },
    )
    # The alert links to the run: the UI's address (the API's server, without /api).
    server.settings["PREFECT_UI_URL"] = server.url
    with server:
        yield PrefectServer(api_url=server.api_url, home=home)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    with running_prefect_server(tmp_path_factory.mktemp("prefect-server")) as server:
        yield server


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


def prefect_setup(server: PrefectServer, **extra_env: str) -> str:
    """Run the scripted set-up (`./dev prefect-setup`) against `server`; return what it printed."""
    result = subprocess.run(
        [sys.executable, "-m", "flows.prefect_setup"],
        cwd=ROOT,
        env=server.env(**extra_env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="session")
def deployed(prefect_server: PrefectServer, code_snapshot: Snapshot) -> Snapshot:
    """`prefect deploy --all` from the snapshot, after the scripted set-up the README documents.

    The repository needs no token here (the Secret block is created empty); production stores a
    read-only one in it.
    """
    prefect_setup(prefect_server)
    prefect_server.cli("deploy", "--all", cwd=code_snapshot.path)
    return code_snapshot


# --- the production install: dependencies from uv.lock without the dev group ----------------------


def uv_executable() -> str:
    """The uv that `./dev setup` uses (on PATH, as `uv run` sets `UV`, or in pip's user bin)."""
    candidates = [os.environ.get("UV"), shutil.which("uv"), str(Path(site.getuserbase()) / "bin" / "uv")]
    found = next((c for c in candidates if c and Path(c).is_file()), None)
    assert found, "uv not found; ./dev setup installs it"
    return found


@dataclass(frozen=True)
class RuntimeEnvironment:
    """A virtual environment holding what production installs: `uv sync --frozen --no-dev`."""

    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def env(self, base: dict[str, str]) -> dict[str, str]:
        """`base` with this environment first on PATH (and no other virtual environment)."""
        env = {k: v for k, v in base.items() if k != "VIRTUAL_ENV"}
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.venv)
        return env


@pytest.fixture(scope="session")
def runtime_environment(tmp_path_factory: pytest.TempPathFactory) -> RuntimeEnvironment:
    """`uv venv` + `uv sync --frozen --no-dev --no-install-project` from this repository's uv.lock.

    The project itself is not installed: as on a process worker, the code comes from the checkout
    the flow run (or the test) works in.
    """
    venv = tmp_path_factory.mktemp("no-dev") / "venv"
    uv = uv_executable()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "UV_COMPILE_BYTECODE"}
    }
    env["UV_PROJECT_ENVIRONMENT"] = str(venv)
    for command in (
        [uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
        [uv, "sync", "--frozen", "--no-dev", "--no-install-project", "--quiet"],
    ):
        result = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
    return RuntimeEnvironment(venv)


@pytest.fixture(scope="session")
def generated_copy(code_snapshot: Snapshot, tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """The snapshot plus one pipeline of every pattern from `./dev new-pipeline`, committed."""
    from tools.new_pipeline.__main__ import PATTERNS

    repo = tmp_path_factory.mktemp("generated") / "data-pipelines"
    shutil.copytree(code_snapshot.path, repo)
    for pattern in PATTERNS:
        name = f"new_{pattern.replace('-', '_')}"
        result = subprocess.run(
            [sys.executable, "-m", "tools.new_pipeline", name, pattern],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    _git("add", "--all", cwd=repo)
    _git("commit", "--quiet", "--no-verify", "-m", "one generated pipeline of every pattern", cwd=repo)
    _git("remote", "set-url", "origin", str(repo), cwd=repo)
    return Snapshot(path=repo, commit=_git("rev-parse", "HEAD", cwd=repo))


@dataclass(frozen=True)
class SandboxSettings:
    """Where a running sandbox is: settings for the pipelines, and the catalogue owner's DSN."""

    env: dict[str, str]
    postgres_dsn: str


@contextmanager
def sandbox_of(repo: Path, tmp_path: Path) -> Iterator[SandboxSettings]:
    """Run `repo`'s sandbox (its generated stand-ins included) in a subprocess until the block ends."""
    settings_file = tmp_path / "sandbox.json"
    log_path = tmp_path / "sandbox.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.deploy.serve_sandbox", str(settings_file)],
            cwd=repo,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until(settings_file.exists, process=process, log=log_path, timeout=300, what="the sandbox")
            settings = json.loads(settings_file.read_text())
            yield SandboxSettings(env=settings["env"], postgres_dsn=settings["postgres_dsn"])
        finally:
            stop_group(process, grace=60)


class WebhookReceiver(HttpStandIn):
    """A Slack-compatible incoming webhook on loopback that records what it is sent."""

    # Slack's incoming-webhook URLs carry their secret in the path, like this one.
    hook_path = "/services/T0SANDBOX/B0SANDBOX/sandboxhookpath"  # pragma: allowlist secret - made up

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.messages: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return self.root_url + self.hook_path

    def answer(self, request: Request) -> Response:
        with self.lock:
            self.messages.append({"path": request.path, "payload": request.get_json(force=True)})
        return Response(b"ok", 200, content_type="text/plain")  # what Slack answers

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
    with WebhookReceiver() as receiver:
        yield receiver
