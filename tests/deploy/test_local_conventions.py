"""dlt's and Prefect's own tools work on what the project runs locally.

* dlt's CLI finds the demo's pipelines: `./dev` and the `.envrc` set-up give dlt the same working
  directory (`DLT_DATA_DIR=.local/dlt`) that `./dev demo` uses.
* `python flows/<name>.py` does not depend on Prefect's temporary server starting within Prefect's
  default 20 s: `prefect.toml` at the root raises the limit for every command run from there.
* `./dev setup` compiles bytecode, so no process pays for compiling dlt, Prefect and SQLAlchemy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from sandbox.frankfurter import FrankfurterServer
from sandbox.main_job import DEFAULT_WAREHOUSE, local_environment
from tests.deploy.conftest import ROOT

# End to end (slow): `./dev test` skips it; `./dev test-slow` and `.ci/run` run it.
pytestmark = pytest.mark.slow

PROBE = """
import sys, dlt
pipeline = dlt.pipeline(sys.argv[1], destination=dlt.destinations.duckdb(sys.argv[2]), dataset_name="probe")
print(pipeline.run([{"id": 1}, {"id": 2}], table_name="probe"))
"""


class _NoSandbox:
    def env(self) -> dict[str, str]:
        return {}


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without dlt's, Prefect's and the test's own settings."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DLT", "PREFECT_", "LOCAL__", "VIRTUAL_ENV"))
    }
    env.update(extra)
    return env


@pytest.fixture
def demo_probe(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A small pipeline run the way `./dev demo` runs its pipelines (its DLT_DATA_DIR), removed after."""
    demo_data_dir = Path(local_environment(_NoSandbox(), DEFAULT_WAREHOUSE)["DLT_DATA_DIR"])  # type: ignore[arg-type]
    name = f"cli_probe_{uuid.uuid4().hex[:8]}"
    try:
        result = subprocess.run(
            [sys.executable, "-c", PROBE, name, str(tmp_path / "warehouse.duckdb")],
            cwd=tmp_path,
            env=clean_env(DLT_DATA_DIR=str(demo_data_dir)),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        yield name, demo_data_dir / "pipelines"
    finally:
        shutil.rmtree(demo_data_dir / "pipelines" / name, ignore_errors=True)


def test_dev_dlt_shows_the_info_and_trace_of_a_pipeline_the_demo_ran(demo_probe: tuple[str, Path]) -> None:
    name, pipelines_dir = demo_probe
    for command in ("info", "trace"):
        result = subprocess.run(
            [str(ROOT / "dev"), "dlt", "pipeline", name, command],
            cwd=ROOT,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"Found pipeline {name} in {pipelines_dir}" in result.stdout
    assert "Step load COMPLETED" in result.stdout  # the trace of the run


def test_the_envrc_set_up_gives_the_bare_dlt_command_the_demos_pipelines(
    demo_probe: tuple[str, Path],
) -> None:
    name, pipelines_dir = demo_probe
    script = 'log_error() { echo "$*" >&2; }; source .envrc.example; dlt pipeline "$1" info'
    result = subprocess.run(
        ["bash", "-c", script, "bash", name],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Found pipeline {name} in {pipelines_dir}" in result.stdout


def prefect_setting(expression: str, cwd: Path) -> str:
    script = f"from prefect.settings import get_current_settings as s; print({expression})"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, env=clean_env(), capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_commands_run_from_the_root_give_the_temporary_prefect_server_time_to_start(tmp_path: Path) -> None:
    limit = "s().server.ephemeral.startup_timeout_seconds"
    assert int(prefect_setting(limit, tmp_path)) == 20  # Prefect's default, too short on a busy machine
    assert int(prefect_setting(limit, ROOT)) >= 120


@pytest.mark.timeout(900)
def test_python_flows_currencies_runs_on_a_temporary_prefect_server(
    frankfurter: FrankfurterServer, tmp_path: Path
) -> None:
    """The README's command, with no Prefect server running: Prefect starts a temporary one."""
    warehouse = tmp_path / "flow.duckdb"
    result = subprocess.run(
        [sys.executable, "flows/currencies.py"],
        cwd=ROOT,
        env=clean_env(
            DLT__DESTINATION="duckdb",
            LOCAL__DUCKDB_PATH=str(warehouse),
            DLT_DATA_DIR=str(tmp_path / "dlt"),
            PREFECT_HOME=str(tmp_path / "prefect"),
        ),
        capture_output=True,
        text=True,
        timeout=800,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("select count(*) from currencies.currencies").fetchall()
    assert rows == [(len(frankfurter.currencies),)]


def test_dev_setup_compiles_bytecode_for_every_installed_package() -> None:
    subprocess.run(
        [str(ROOT / "dev"), "setup"], cwd=ROOT, env=clean_env(), capture_output=True, timeout=900, check=True
    )
    import dlt

    # A module nothing in this project imports, so only an install-time compile wrote its bytecode.
    never_imported = Path(dlt.__file__).parent / "destinations" / "impl" / "bigquery" / "bigquery.py"
    assert never_imported.exists()
    assert (never_imported.parent / "__pycache__" / f"bigquery.{sys.implementation.cache_tag}.pyc").exists()
