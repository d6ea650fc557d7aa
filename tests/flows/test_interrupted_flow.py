"""A flow run whose load a real SIGTERM or Ctrl-C stops: not retried, and no failure of the data.

`python flows/exchange_rates.py` runs in a subprocess against the test harness's API and signals
itself while dlt normalises (`tests/pipelines/signal_during_step.py --flow`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

from flows.exchange_rates import exchange_rates_flow
from sandbox.frankfurter import FrankfurterServer
from tests.flows.prefect_api import load_report, run_logs, task_runs
from tests.interrupts import run as run_child
from tests.snowflake.snowpipe_emulator import RATES_START, expected_history

ROOT = Path(__file__).resolve().parents[2]
HELPER = ROOT / "tests" / "pipelines" / "signal_during_step.py"

pytestmark = pytest.mark.slow  # flow processes stopped by signals

EXPECTED_STATE = {
    "SIGTERM": "Execution was aborted by a termination signal.",
    "SIGINT": "Execution was aborted by an interrupt signal.",
}
EXPECTED_EXIT = {"SIGTERM": -signal.SIGTERM, "SIGINT": 128 + signal.SIGINT}


def flow_run(output: str) -> Any:
    """The flow run whose name the flow process printed."""
    import re

    names = re.findall(r"Flow run '([\w-]+)' - ", output)
    assert names, output[-3000:]

    async def read() -> Any:
        async with get_client() as client:
            [found] = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[names[0]]))
            )
            return found

    return asyncio.run(read())


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_flow_stopped_during_normalize_is_not_retried_and_the_next_run_finishes_it(
    rates_api: FrankfurterServer, warehouse: Path, signame: str
) -> None:
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
    env["PYTHONPATH"] = str(ROOT)
    stopped = run_child(
        [sys.executable, str(HELPER), "exchange_rates", "normalize", signame, "--flow"],
        timeout=300,
        cwd=ROOT,
        env=env,
    )
    output = stopped.stdout + stopped.stderr
    run = flow_run(output)
    assert run.state.is_crashed(), (run.state, output[-3000:])
    assert run.state.message == EXPECTED_STATE[signame]
    [task] = task_runs(run.id)
    assert task.state.is_crashed() and task.run_count == 1  # never retried
    logs = run_logs(run.id)
    said = f"Pipeline 'exchange_rates' was stopped by {signame} (signal {int(signal.Signals[signame])}) during the normalize step."
    assert any(line.startswith(said) for line in logs), logs
    assert not any("not retried" in line or "Retrying" in line for line in logs), logs
    # SIGTERM: Prefect ends the process by the signal, as for any SIGTERM it handles itself;
    # Ctrl-C: the engine's one line and 130, as `python -m pipelines` does.
    assert stopped.returncode == EXPECTED_EXIT[signame], output[-3000:]
    if signame == "SIGINT":
        assert stopped.stderr.strip().splitlines()[-1].startswith(said), output[-3000:]

    state = exchange_rates_flow(return_state=True)

    assert state.is_completed()
    history = expected_history(rates_api, RATES_START)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            "select date, base, quote, rate from exchange_rates.exchange_rates order by all"
        ).fetchall()
    assert rows == history  # every row, once
    summary = state.result()
    [finished] = summary.finished_load_ids
    _, description, table = load_report(state.state_details.flow_run_id)
    assert description is not None
    headline = description.splitlines()[0]
    assert headline.startswith(
        f"### exchange_rates: {len(history)} rows into duckdb dataset 'exchange_rates'"
    ), headline
    assert finished in headline
    [row] = [r for r in table if r["load id"] == finished and r["table"] == "exchange_rates"]
    assert row["rows loaded"] == row["rows in table"] == len(history)
