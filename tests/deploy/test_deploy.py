"""prefect.yaml deployed for real: `prefect deploy --all`, then a process worker runs a deployment."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from flows.common import all_flows
from tests.deploy.conftest import (
    ROOT,
    WORK_POOL,
    PrefectServer,
    RuntimeEnvironment,
    Snapshot,
    sandbox_of,
    worker_command,
)
from tests.pipelines.products_helpers import assert_destination_equals_source
from utils.check import pipeline_names

# End to end (slow): `./dev test` skips it; `./dev test-slow` and `.ci/run` run it.
pytestmark = pytest.mark.slow

# Deployments that run only when asked, with the parameters they pass.
ON_DEMAND = {
    ("exchange_rates", "backfill"): {},
    ("hubspot", "full-refresh"): {"full_refresh": True},
    ("products", "full-refresh"): {"full_refresh": True},
}


def deployments(server: PrefectServer) -> dict[tuple[str, str], dict[str, Any]]:
    """Every deployment on the server, by (flow name, deployment name)."""
    flows = {f["id"]: f["name"] for f in server.post("/flows/filter")}
    return {(flows[d["flow_id"]], d["name"]): d for d in server.post("/deployments/filter")}


def declared_crons() -> dict[str, list[str]]:
    """Cron strings per deployment name in prefect.yaml (anchors resolved), for the scheduled ones."""
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return {
        d["name"]: sorted(s["cron"] for s in d.get("schedules") or [])
        for d in config["deployments"]
        if d.get("schedules")
    }


def test_every_flow_has_exactly_one_scheduled_deployment_with_its_schedule_and_limits(
    prefect_server: PrefectServer, deployed: Snapshot
) -> None:
    found = deployments(prefect_server)
    flow_names = {flow.name for flow in all_flows().values()}
    # Every pipeline has its flow (pipelines added later included), and the four of the seed are there.
    assert flow_names == set(pipeline_names())
    assert {"currencies", "exchange_rates", "hubspot", "products"} <= flow_names
    assert {flow for flow, _ in found} == flow_names
    crons = declared_crons()
    for flow in flow_names:
        scheduled = [d for (f, _), d in found.items() if f == flow and d["schedules"]]
        assert [d["name"] for d in scheduled] == [flow], f"{flow}: {[d['name'] for d in scheduled]}"
        [deployment] = scheduled
        schedules = [s["schedule"] for s in deployment["schedules"]]
        assert sorted(s["cron"] for s in schedules) == crons[flow]
        assert {s["timezone"] for s in schedules} == {"Europe/London"}
        assert all(s["active"] for s in deployment["schedules"])
        assert deployment["global_concurrency_limit"]["limit"] == 1
        assert deployment["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    for (flow, name), deployment in found.items():
        assert deployment["work_pool_name"] == WORK_POOL
        assert {"data-pipelines", flow} <= set(deployment["tags"])  # the alert matches the first
        assert deployment["version"] == deployed.commit
        # Runs clone exactly the deployed commit; the token stays a reference, resolved on the worker.
        [pull] = deployment["pull_steps"]
        clone = pull["prefect.deployments.steps.git_clone"]
        assert clone["commit_sha"] == deployed.commit
        assert clone["repository"] == str(deployed.path)
        assert clone["access_token"] == "{{ prefect.blocks.secret.data-pipelines-git-token }}"
        if (flow, name) in ON_DEMAND:
            assert deployment["schedules"] == []
            assert deployment["parameters"] == ON_DEMAND[(flow, name)]
            assert deployment["global_concurrency_limit"]["limit"] == 1
            assert deployment["concurrency_options"]["collision_strategy"] == "ENQUEUE"
        else:
            assert name == flow
    assert set(found) == {(f, f) for f in flow_names} | set(ON_DEMAND)


@pytest.mark.timeout(1200)
def test_a_process_worker_in_the_no_dev_environment_runs_every_scheduled_deployment(
    prefect_server: PrefectServer,
    deployed: Snapshot,
    runtime_environment: RuntimeEnvironment,
    warehouse: Path,
    tmp_path: Path,
) -> None:
    """Each scheduled deployment, run as production runs it: a process worker whose Python holds
    only `uv sync --frozen --no-dev` (no project, no dev group) clones the deployed commit through
    the `pull` step and runs the flow from that clone against the sandbox."""
    scheduled = sorted(flow for (flow, name), d in deployments(prefect_server).items() if d["schedules"])
    assert scheduled == sorted(all_flows())
    # The worker's Python has no project installed: a run's code can only come from its clone.
    no_code = subprocess.run(
        [str(runtime_environment.python), "-c", "import flows"],
        cwd=tmp_path,
        capture_output=True,
        check=False,
    )
    assert no_code.returncode != 0
    with sandbox_of(deployed.path, tmp_path) as sandbox:
        env = runtime_environment.env(
            prefect_server.env(
                **sandbox.env,
                # A short backfill: exchange_rates would otherwise start in 1999.
                SOURCES__EXCHANGE_RATES__START_DATE=(dt.date.today() - dt.timedelta(days=40)).isoformat(),
            )
        )
        for flow in scheduled:
            # One run at a time: the flows share the DuckDB file, which one process opens at a time.
            flow_run_id = prefect_server.run_deployment(f"{flow}/{flow}")
            work_dir = tmp_path / f"worker-{flow}"
            work_dir.mkdir()
            worker = subprocess.run(
                worker_command(runtime_environment.python),
                cwd=work_dir,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            run = prefect_server.wait_for_final_state(flow_run_id, timeout=120)
            logs = prefect_server.logs(flow_run_id)
            assert run["state"]["type"] == "COMPLETED", (
                f"{flow}: {run['state']}\n"
                + "\n".join(logs[-30:])
                + worker.stdout[-3000:]
                + worker.stderr[-3000:]
            )
            assert "Deployment step 'git_clone' completed successfully" in logs, logs
            [artifact] = prefect_server.post(
                "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}}
            )
            assert artifact["key"] == f"{flow.replace('_', '-')}-load"  # Prefect keys: no underscores
            rows = (
                artifact["data"] if isinstance(artifact["data"], list) else yaml.safe_load(artifact["data"])
            )
            assert rows and all(r["rows in table"] > 0 for r in rows), rows
        assert_destination_equals_source(sandbox.postgres_dsn, warehouse, "products")
        assert_destination_equals_source(sandbox.postgres_dsn, warehouse, "categories")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        datasets = {
            row[0]
            for row in con.execute("select distinct table_schema from information_schema.tables").fetchall()
        }
    assert set(scheduled) <= datasets
