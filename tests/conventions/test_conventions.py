"""The project's conventions, enforced over every source, pipeline and flow in the repository.

Each rule also runs against `bad_repo/`, a fixture that breaks it, to show the rule can fail. The
import rules between layers and the ban on `os.environ` are standard tools' checks (import-linter and
ruff's banned-api rule), run in `test_architecture.py`; this module keeps the rules no tool covers.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conventions import checks

ROOT = Path(__file__).resolve().parents[2]
BAD = Path(__file__).resolve().parent / "bad_repo"
CODE_PACKAGES = ("sources", "pipelines", "flows", "utils", "sandbox")


def test_sources_follow_the_source_pattern() -> None:
    assert checks.check_sources(ROOT) == []


def test_flows_import_pipelines_only_inside_tasks() -> None:
    assert checks.check_flow_imports(ROOT) == []


def test_every_task_retries_at_least_three_times_with_growing_delays() -> None:
    assert checks.check_task_retries(ROOT) == []


def test_every_flow_has_a_deployment() -> None:
    assert checks.check_deployments(ROOT) == []


def test_there_are_flows_to_check() -> None:
    # Guards the rules above against passing vacuously (e.g. if discovery broke).
    assert len(checks.flow_modules(ROOT)) >= 1
    assert checks.python_files(ROOT, "sources")


def test_no_credential_literals_in_code() -> None:
    assert checks.check_credential_literals(ROOT, CODE_PACKAGES) == []


def test_secrets_files_are_ignored_by_git() -> None:
    for path in (".dlt/secrets.toml", ".envrc", ".local/warehouse.duckdb", "x.duckdb"):
        result = subprocess.run(
            ["git", "check-ignore", "-q", path], cwd=ROOT, check=False, capture_output=True
        )
        assert result.returncode == 0, f"{path} is not gitignored"
    assert (ROOT / ".dlt" / "secrets.toml.example").is_file()


def test_detect_secrets_finds_nothing_in_tracked_files() -> None:
    from detect_secrets.core.secrets_collection import SecretsCollection
    from detect_secrets.settings import default_settings

    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    files = [
        str(ROOT / f)
        for f in tracked
        if f != "uv.lock" and not f.startswith("tests/conventions/bad_repo/") and (ROOT / f).is_file()
    ]
    collection = SecretsCollection()
    with default_settings():
        for path in files:
            collection.scan_file(path)
    found = [f"{name}:{secret.line_number} ({secret.type})" for name, secret in collection]
    assert found == []


# --- the rules bite: each one reports the bad fixture -------------------------------------------


def test_source_rules_catch_the_bad_source() -> None:
    problems = "\n".join(checks.check_sources(BAD))
    assert "has no section=" in problems
    assert "without an explicit write_disposition" in problems
    assert "merge resource without primary_key" in problems
    # Importing prefect or pipelines and reading os.environ: test_architecture.py (import-linter, ruff).
    assert "source names destination 'duckdb'" in problems
    assert "source uses dlt.pipeline" in problems


def test_flow_rules_catch_the_bad_flows() -> None:
    assert any("imports pipelines.currencies at module level" in p for p in checks.check_flow_imports(BAD))
    retries = "\n".join(checks.check_task_retries(BAD))
    assert "`too_few_retries` has retries=1" in retries
    assert "`shrinking_delays` has retry delays [90, 30, 10] that do not grow" in retries
    assert "`constant_delay` has retry_delay_seconds=30" in retries
    assert checks.check_deployments(BAD) == ["flows/bad_flow.py:bad_flow has no deployment in prefect.yaml"]


def test_credential_rule_catches_the_literal() -> None:
    problems = checks.check_credential_literals(BAD, ("sources",))
    assert problems == ["sources/bad_source/source.py:10: `API_TOKEN` is set to a string literal"]


@pytest.mark.parametrize("value", ["", "<your token>", "***"])
def test_credential_rule_allows_placeholders(value: str, tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(f"password = {value!r}\n")
    assert checks.check_credential_literals(tmp_path, ("pkg",)) == []
