"""prefect.yaml deployed for real: `prefect deploy --all`, then a process worker runs a deployment."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import yaml

from flows.common import all_flows
from sandbox.postgres import CatalogueMutator, PostgresServer
from tests.deploy.conftest import ROOT, WORK_POOL, PrefectServer, Snapshot
from tests.pipelines.products_helpers import assert_destination_equals_source
from utils.check import pipeline_names

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


def test_a_process_worker_runs_the_products_deployment_end_to_end(
    prefect_server: PrefectServer,
    deployed: Snapshot,
    catalogue: CatalogueMutator,
    postgres_server: PostgresServer,
    warehouse: Path,
    tmp_path: Path,
) -> None:
    # `<flow>/<deployment>`, as the CLI wants it; the environment (sandbox PostgreSQL, DuckDB file,
    # dlt working dir) reaches the run through the worker, as a production worker's would.
    output = prefect_server.cli("deployment", "run", "products/products")
    match = re.search(r"UUID: ([0-9a-f-]{36})", output)
    assert match, output
    flow_run_id = match.group(1)
    work_dir = tmp_path / "worker"
    work_dir.mkdir()
    worker = subprocess.run(
        [
            sys.executable,
            "-m",
            "prefect",
            "worker",
            "start",
            "--pool",
            WORK_POOL,
            "--type",
            "process",
            "--run-once",
        ],
        cwd=work_dir,
        env=prefect_server.env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    run = prefect_server.wait_for_final_state(flow_run_id)
    assert run["state"]["type"] == "COMPLETED", worker.stdout[-4000:] + worker.stderr[-4000:]
    logs = prefect_server.logs(flow_run_id)
    assert "Deployment step 'git_clone' completed successfully" in logs, logs
    assert any(
        line.startswith("products: ") and "rows into duckdb dataset 'products'" in line for line in logs
    )
    assert_destination_equals_source(postgres_server.dsn, warehouse, "products")
    assert_destination_equals_source(postgres_server.dsn, warehouse, "categories")
    [artifact] = prefect_server.post(
        "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}}
    )
    assert artifact["key"] == "products-load"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        in_table = con.execute("select count(*) from products.products").fetchone()
    rows = artifact["data"] if isinstance(artifact["data"], list) else yaml.safe_load(artifact["data"])
    [products] = [r for r in rows if r["table"] == "products"]
    assert in_table == (products["rows in table"],)
