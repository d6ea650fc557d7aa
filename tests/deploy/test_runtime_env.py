"""What production installs (`uv sync --frozen --no-dev`) runs every pipeline.

A worker or the image installs the `[project] dependencies` from uv.lock and nothing of the dev
group, so anything the code needs at run time must be a project dependency - the products source
once needed connectorx and psycopg2 from the dev group and would have failed on its first
production run.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import duckdb
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.conftest import ROOT, RuntimeEnvironment, Snapshot, sandbox_of

# End to end (slow): `./dev test` skips it; `./dev test-slow` and `.ci/run` run it.
pytestmark = pytest.mark.slow

RUNTIME_PACKAGES = ("sources", "pipelines", "flows", "utils", "automations")
FIRST_PARTY = {*RUNTIME_PACKAGES, "sandbox", "tools", "tests"}
# Imported by name only inside dlt, chosen by our configuration: the products source's sql_table
# backend (sources/products/settings.py) and its SQLAlchemy driver (`postgresql+psycopg2`).
NAMED_BY_CONFIGURATION = {"connectorx", "psycopg2-binary"}
DEV_ONLY = ("pytest", "pgserver", "moto", "mypy", "fakesnow")


def project_dependencies() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {canonicalize_name(Requirement(r).name) for r in pyproject["project"]["dependencies"]}


def runtime_imports() -> dict[str, set[str]]:
    """Top-level third-party modules imported by the runtime packages, with the files importing them."""
    found: dict[str, set[str]] = {}
    for package in RUNTIME_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_distribution_the_code_needs_at_run_time_is_a_project_dependency() -> None:
    declared = project_dependencies()
    distributions = packages_distributions()
    missing = {}
    for module, files in runtime_imports().items():
        names = {canonicalize_name(d) for d in distributions.get(module, [module])}
        if not names & declared:
            missing[module] = sorted(files)
    assert not missing, f"imported at run time but not in [project] dependencies: {missing}"
    assert declared >= NAMED_BY_CONFIGURATION


def test_the_no_dev_environment_has_the_runtime_drivers_and_no_dev_tools(
    runtime_environment: RuntimeEnvironment,
) -> None:
    def importable(module: str) -> bool:
        return (
            subprocess.run(
                [str(runtime_environment.python), "-c", f"import {module}"],
                cwd=runtime_environment.venv,
                capture_output=True,
                timeout=120,
                check=False,
            ).returncode
            == 0
        )

    assert importable("connectorx") and importable("psycopg2")
    assert not [m for m in DEV_ONLY if importable(m)]


@pytest.mark.timeout(1500)
def test_every_pipeline_and_a_generated_one_of_each_pattern_run_in_the_no_dev_environment(
    runtime_environment: RuntimeEnvironment, generated_copy: Snapshot, tmp_path: Path
) -> None:
    repo = generated_copy.path
    names = sorted(p.stem for p in (repo / "pipelines").glob("*.py") if not p.stem.startswith("__"))
    # Every pipeline of the repository, plus the four `./dev new-pipeline` generated into the copy.
    assert {p.stem for p in (ROOT / "pipelines").glob("*.py") if not p.stem.startswith("__")} < set(names)
    assert len([n for n in names if n.startswith("new_")]) == 4
    warehouse = tmp_path / "warehouse.duckdb"
    script = (
        "import json, sys; from importlib import import_module; "
        "info = import_module(f'pipelines.{sys.argv[1]}').run(); "
        "print(json.dumps({'dataset': info.dataset}))"
    )
    datasets = {}
    with sandbox_of(repo, tmp_path) as sandbox:
        env = runtime_environment.env(
            {
                **{k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DLT"))},
                **sandbox.env,
                "DLT__DESTINATION": "duckdb",
                "LOCAL__DUCKDB_PATH": str(warehouse),
                "DLT_DATA_DIR": str(tmp_path / "dlt"),
                "SOURCES__EXCHANGE_RATES__START_DATE": (dt.date.today() - dt.timedelta(days=40)).isoformat(),
            }
        )
        for name in names:
            result = subprocess.run(
                [str(runtime_environment.python), "-c", script, name],
                cwd=repo,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            assert result.returncode == 0, f"{name}:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
            datasets[name] = json.loads(result.stdout.strip().splitlines()[-1])["dataset"]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for name, dataset in datasets.items():
            tables = [
                row[0]
                for row in con.execute(
                    "select table_name from information_schema.tables "
                    "where table_schema = ? and table_name not like '\\_dlt%' escape '\\'",
                    [dataset],
                ).fetchall()
            ]
            counts = {
                t: con.execute(f'select count(*) from "{dataset}"."{t}"').fetchall()[0][0] for t in tables
            }
            assert counts and all(counts.values()), f"{name}: {counts}"
