"""Alerting for real: the automation in automations/ on a Prefect server, a webhook receiver on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.frankfurter import FrankfurterServer
from sandbox.hubspot import HubSpotServer
from tests.deploy.conftest import ROOT, PrefectServer, Snapshot, WebhookReceiver, worker_command
from tests.sources.hubspot.portal import TOKEN, portal

# End to end (slow): `./dev test` skips it; `./dev test-slow` and `.ci/run` run it.
pytestmark = pytest.mark.slow

AUTOMATION = "data-pipelines - flow run failed"
BUSY_AUTOMATION = "data-pipelines - scheduled run cancelled, pipeline busy"
# After an alert arrives, how long to watch for a second one that must not come (the trigger and
# action services act within a second on a local server).
QUIET_SECONDS = 3


@pytest.fixture(scope="module")
def applied(prefect_server: PrefectServer, webhook: WebhookReceiver) -> WebhookReceiver:
    """The notification block and automations applied by the same command CI runs, twice."""
    env = prefect_server.env(ALERT_WEBHOOK_URL=webhook.url)
    for _ in range(2):  # applying again updates in place
        result = subprocess.run(
            [sys.executable, "-m", "automations.apply", "--allow-private-urls"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert webhook.hook_path not in result.stdout + result.stderr  # the URL is never printed
    automations = prefect_server.post("/automations/filter")
    assert sorted(a["name"] for a in automations) == sorted([AUTOMATION, BUSY_AUTOMATION])
    return webhook


@pytest.fixture
def alerting(applied: WebhookReceiver) -> WebhookReceiver:
    """The receiver, with nothing received yet."""
    applied.clear()
    return applied


@pytest.fixture
def hubspot_down(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubSpotServer]:
    with portal(monkeypatch, contacts=50) as server:
        server.inject_fault("error", times=10_000, status=503)
        yield server


def test_a_failing_flow_sends_exactly_one_alert_after_its_last_retry_and_a_success_none(
    prefect_server: PrefectServer,
    alerting: WebhookReceiver,
    hubspot_down: HubSpotServer,
    frankfurter: FrankfurterServer,
) -> None:
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("alert_scenario.py"))],
        cwd=ROOT,
        env=prefect_server.env(PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    runs = json.loads(result.stdout.strip().splitlines()[-1])
    assert runs["succeeded"][1] == "COMPLETED" and runs["failed"][1] == "FAILED"
    failed_id = runs["failed"][0]

    [alert] = alerting.wait_for(1)
    time.sleep(QUIET_SECONDS)
    assert alerting.received() == [alert]  # one alert, for the failure; the success sent none

    task_runs = prefect_server.post("/task_runs/filter", {"flow_runs": {"id": {"any_": [failed_id]}}})
    assert [t["run_count"] for t in task_runs] == [4]  # the alert came after the third retry
    assert alert["path"] == alerting.hook_path
    text = alert["payload"]["text"]
    assert text.startswith("*Pipeline hubspot Failed: run ")
    run_name = prefect_server.flow_run(failed_id)["name"]
    assert f"Run: {run_name} ({failed_id})" in text  # which run
    assert "Flow: hubspot" in text  # which flow
    assert "What failed: " in text and "503" in text  # what failed
    assert f"/runs/flow-run/{failed_id}" in text and f"prefect flow-run logs {failed_id}" in text  # where
    assert TOKEN not in text  # no secret: not the HubSpot token ...
    assert alerting.hook_path not in text  # ... nor the webhook's own URL


def _task_running(server: PrefectServer, flow_run_id: str) -> bool:
    runs = server.post("/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})
    return any((run.get("state") or {}).get("type") == "RUNNING" for run in runs)


def _flow_run_pid(flow_run_id: str) -> int | None:
    """The process running `flow_run_id`, found by the run id the worker puts in its environment."""
    needle = f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                return int(proc.name)
        except OSError:  # gone, or not ours to read
            continue
    return None


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the flow run's process through /proc")
def test_a_run_whose_process_dies_is_reported_crashed_by_the_server(
    prefect_server: PrefectServer,
    deployed: Snapshot,
    alerting: WebhookReceiver,
    frankfurter: FrankfurterServer,
    tmp_path: Path,
) -> None:
    # The API hangs, so the run is still extracting when its process is killed: nothing in that
    # process can report the failure, only the worker and the server see it.
    frankfurter.inject_fault("slow", times=10, delay=30)
    flow_run_id = prefect_server.run_deployment("currencies/currencies")
    worker = subprocess.Popen(
        worker_command(),
        cwd=tmp_path,
        env=prefect_server.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not _task_running(prefect_server, flow_run_id):  # the load task has started
            assert time.monotonic() < deadline and worker.poll() is None, "the run never started its task"
            time.sleep(0.1)
        pid = _flow_run_pid(flow_run_id)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        worker.wait(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()

    assert prefect_server.wait_for_final_state(flow_run_id)["state"]["type"] == "CRASHED"
    [alert] = alerting.wait_for(1)
    text = alert["payload"]["text"]
    assert text.startswith("*Pipeline currencies Crashed: run ")
    assert "Deployment: currencies" in text and flow_run_id in text


def _set_state(
    server: PrefectServer, flow_run_id: str, state_type: str, *, force: bool = False
) -> dict[str, Any]:
    return server.post(  # type: ignore[no-any-return]
        f"/flow_runs/{flow_run_id}/set_state", {"state": {"type": state_type}, "force": force}
    )


def test_a_run_cancelled_because_the_pipeline_is_busy_sends_one_alert_and_a_person_cancelling_none(
    prefect_server: PrefectServer, deployed: Snapshot, alerting: WebhookReceiver
) -> None:
    # Issue 15.2: CANCEL_NEW cancelled runs silently. The server's own orchestration, no worker: the
    # first run of the scheduled currencies deployment takes its slot and runs; the next is refused.
    deployment = prefect_server.get("/deployments/name/currencies/currencies")
    first, second, third = (
        prefect_server.post(f"/deployments/{deployment['id']}/create_flow_run", {})["id"] for _ in range(3)
    )
    try:
        assert _set_state(prefect_server, first, "PENDING")["status"] == "ACCEPT"
        assert _set_state(prefect_server, first, "RUNNING")["status"] == "ACCEPT"
        refused = _set_state(prefect_server, second, "PENDING")
        assert refused["state"]["type"] == "CANCELLED"
        assert refused["state"]["message"] == "Deployment concurrency limit reached."

        [alert] = alerting.wait_for(1)
        text = alert["payload"]["text"]
        run_name = prefect_server.flow_run(second)["name"]
        assert text.startswith(f"*Pipeline currencies busy: run {run_name} cancelled*")
        assert f"Cancelled run: {run_name} ({second})" in text and "Deployment: currencies" in text
        assert "busy for longer than one schedule interval" in text

        # A person cancelling a run is not this alert (nor the failure alert).
        _set_state(prefect_server, third, "CANCELLED")
        time.sleep(QUIET_SECONDS)
        assert alerting.received() == [alert]
    finally:
        _set_state(prefect_server, first, "CANCELLED", force=True)  # frees the deployment's slot
