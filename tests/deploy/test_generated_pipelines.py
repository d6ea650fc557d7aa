"""Proof for `./dev new-pipeline`: a pipeline of every pattern, generated into a copy of the
repository, leaves the copy's own `./dev test` green - set-up of its own `.venv` from uv.lock, lint,
format, types and the whole fast test suite, whose pipeline-enumerating tests (conventions and
import contracts, account DDL, check-config, the vault, deployments, the secret-leak runs) now see
four more pipelines - and deploys, unedited."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests import interrupts
from tests.deploy.conftest import PrefectServer, Snapshot, _git, uv_executable
from tools.new_pipeline.__main__ import PATTERNS, generate

# End to end (slow): `./dev test` skips it; `./dev test-slow` and `.ci/run` run it.
pytestmark = pytest.mark.slow

# What this test's own process has set (its isolated dlt, Prefect and pytest settings, its .venv) and
# the copy's `./dev test` must not inherit: it runs as on a fresh machine.
INHERITED_PREFIXES = (
    "DLT",
    "DESTINATION__",
    "SOURCES__",
    "LOCAL__",
    "RUNTIME__",
    "VAULT__",
    "PREFECT_",
    "TESTS_PREFECT_HOME",
    "PYTEST_",
    "VIRTUAL_ENV",
    "UV_PROJECT_ENVIRONMENT",
)


def fresh_environment() -> dict[str, str]:
    """This environment without the test's own settings, with uv on PATH as `./dev setup` needs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(INHERITED_PREFIXES)}
    env["PATH"] = f"{Path(uv_executable()).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTEST_WORKERS"] = "2"
    return env


def junit_outcomes(report: Path) -> dict[str, str]:
    """Each test case in a JUnit XML report (`module::name`) and its outcome."""
    outcomes = {}
    for case in ElementTree.parse(report).iter("testcase"):  # noqa: S314 - our own pytest report
        failed = [child.tag for child in case if child.tag in {"failure", "error", "skipped"}]
        outcomes[f"{case.get('classname')}::{case.get('name')}"] = failed[0] if failed else "passed"
    return outcomes


@pytest.fixture
def copy_parent() -> Iterator[Path]:
    """Where the copy goes: a directory every user may pass through, removed afterwards.

    Run as root, the sandbox's PostgreSQL runs as an unprivileged user, which must reach the
    server binaries in the copy's `.venv`; pytest's `tmp_path` is private to the user running it.
    """
    parent = Path(tempfile.mkdtemp(prefix="generated-copy-"))
    parent.chmod(0o755)
    try:
        yield parent
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.timeout(3600)
def test_generated_pipelines_pass_the_copys_dev_test_and_deploy_unedited(
    tmp_path: Path, copy_parent: Path, prefect_server: PrefectServer, deployed: Snapshot
) -> None:
    repo = copy_parent / "data-pipelines"
    shutil.copytree(deployed.path, repo)
    names = [f"gen_{pattern.replace('-', '_')}" for pattern in PATTERNS]
    for name, pattern in zip(names, PATTERNS, strict=True):
        generate(name, pattern, repo)
    _git("add", "--all", cwd=repo)
    _git("commit", "--quiet", "--no-verify", "-m", "four generated pipelines", cwd=repo)
    _git("remote", "set-url", "origin", str(repo), cwd=repo)

    # The copy's own `./dev test`, exactly as its README says: `./dev setup` builds the copy's
    # `.venv` (the project installed editable from the copy, so every subprocess a test starts runs
    # the copy's code), then lint, format check, mypy and the fast suite in parallel.
    report = tmp_path / "copy-tests.xml"
    result = interrupts.run(
        ["./dev", "test", f"--junitxml={report}"], cwd=repo, env=fresh_environment(), timeout=3000
    )
    out = result.stdout
    assert result.returncode == 0, f"./dev test in the copy:\n{out[-8000:]}\n{result.stderr[-3000:]}"
    assert "All checks passed!" in out and "Success: no issues found" in out  # ruff and mypy ran
    # Every generated pipeline's own tests ran there and passed (none skipped), beside the rest.
    outcomes = junit_outcomes(report)
    assert not [test for test, outcome in outcomes.items() if outcome != "passed"]
    for name in names:
        for module in (f"sources.{name}.test_source", f"pipelines.test_{name}", f"flows.test_{name}"):
            assert any(test.startswith(f"tests.{module}::") for test in outcomes), module
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
