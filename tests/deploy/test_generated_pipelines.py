"""Proof for `./dev new-pipeline`: a pipeline of every pattern, generated into a copy of the
repository, leaves the copy's checks green - lint, types, import contracts and the whole fast test
suite, whose pipeline-enumerating tests (conventions, account DDL, check-config, deployments) now
see four more pipelines - and deploys, unedited."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests import interrupts
from tests.deploy.conftest import PrefectServer, Snapshot, _git
from tools.new_pipeline.__main__ import PATTERNS, generate

# End to end (slow): `./dev test` skips it; `./dev test-slow` and `.ci/run` run it.
pytestmark = pytest.mark.slow


@pytest.mark.timeout(3000)
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

    def run(*command: str, timeout: float = 600) -> str:
        result = interrupts.run(list(command), cwd=repo, timeout=timeout)
        assert result.returncode == 0, (
            f"{' '.join(command)}:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
        )
        return result.stdout

    run(sys.executable, "-m", "ruff", "check", ".")
    run(sys.executable, "-m", "ruff", "format", "--check", ".")
    run(sys.executable, "-m", "mypy")
    # The copy's own `./dev test` minus the slow tests: every test that lists pipelines - the
    # conventions and import contracts, the account DDL (schemas, grants, integrations),
    # check-config, the vault, the generator - runs over the generated pipelines too, beside their
    # own tests (extraction from each stand-in, DuckDB loads run three times, the flows under Prefect,
    # the S3 pipeline's own bucket and exactly-once safeguard).
    out = run(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        "not slow",
        "-n",
        "2",
        "--dist",
        "loadgroup",
        timeout=1800,
    )
    for name in names:
        assert f"tests/pipelines/test_{name}.py" not in out  # none of theirs skipped (-ra lists skips)
    generated_sql = [
        p.name for p in (repo / "snowflake" / "account").glob("*.sql") if "gen_" in p.read_text()
    ]
    assert sorted(generated_sql) == ["03_databases.sql", "05_grants.sql", "06_storage_integration.sql"]

    prefect_server.cli("deploy", "--all", cwd=repo)
    deployments = prefect_server.post("/deployments/filter", {"flows": {"name": {"any_": names}}})
    flows = {d["flow_id"] for d in deployments}
    assert len(flows) == len(names)
    assert sorted(d["name"] for d in deployments) == sorted(names)
    assert all(d["schedules"] for d in deployments)
