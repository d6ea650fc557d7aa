"""Proof for `./dev new-pipeline`: a pipeline of every pattern, generated into a copy of the
repository, passes lint, types, the convention tests and its own tests, and deploys - unedited."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.deploy.conftest import PrefectServer, Snapshot, _git
from tools.new_pipeline.__main__ import PATTERNS, generate


def test_generated_pipelines_pass_every_check_and_deploy_unedited(
    tmp_path: Path, prefect_server: PrefectServer, deployed: Snapshot
) -> None:
    repo = tmp_path / "data-pipelines"
    shutil.copytree(deployed.path, repo)
    names = [f"gen_{pattern.replace('-', '_')}" for pattern in PATTERNS]
    for name, pattern in zip(names, PATTERNS, strict=True):
        generate(name, pattern, repo)
    _git("add", "--all", cwd=repo)
    _git("commit", "--quiet", "--no-verify", "-m", "four generated pipelines", cwd=repo)
    _git("remote", "set-url", "origin", str(repo), cwd=repo)

    def run(*command: str) -> None:
        result = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=600, check=False)
        assert result.returncode == 0, (
            f"{' '.join(command)}:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
        )

    run(sys.executable, "-m", "ruff", "check", ".")
    run(sys.executable, "-m", "ruff", "format", "--check", ".")
    run(sys.executable, "-m", "mypy")
    # The convention tests over the whole copy, new pipelines included, and the generated tests:
    # extraction from each stand-in, a DuckDB load run three times, the flow under Prefect.
    generated_tests = [
        path
        for name in names
        for path in (
            f"tests/sources/{name}",
            f"tests/pipelines/test_{name}.py",
            f"tests/flows/test_{name}.py",
        )
    ]
    run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/conventions", *generated_tests)

    prefect_server.cli("deploy", "--all", cwd=repo)
    deployments = prefect_server.post("/deployments/filter", {"flows": {"name": {"any_": names}}})
    flows = {d["flow_id"] for d in deployments}
    assert len(flows) == len(names)
    assert sorted(d["name"] for d in deployments) == sorted(names)
    assert all(d["schedules"] for d in deployments)
