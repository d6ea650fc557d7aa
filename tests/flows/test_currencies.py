"""The currencies flow under Prefect: it loads, logs what it loaded, retries what can heal."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from flows.currencies import currencies_flow
from sandbox.frankfurter import FrankfurterServer
from tests.flows.prefect_api import run_logs, task_runs
from utils.errors import UpstreamUnreachableError
from utils.load_summary import LoadSummary


def test_flow_loads_and_logs_the_summary(frankfurter: FrankfurterServer, warehouse: Path) -> None:
    state = currencies_flow(return_state=True)
    assert state.is_completed()
    summary = state.result()
    assert isinstance(summary, LoadSummary)
    assert summary.row_counts == {"currencies": len(frankfurter.currencies)}
    assert summary.destination == "duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from currencies.currencies").fetchone() == (
            len(frankfurter.currencies),
        )
    logs = run_logs(state.state_details.flow_run_id)
    headline = f"currencies: {len(frankfurter.currencies)} rows into duckdb dataset 'currencies'"
    assert any(line.startswith(headline) and summary.load_ids[0] in line for line in logs), logs


@pytest.mark.usefixtures("no_retry_delay")
def test_transient_failure_is_retried_by_the_task(frankfurter: FrankfurterServer) -> None:
    # Three 503s exhaust dlt's own HTTP retries (3 attempts in tests), failing the task's first
    # try; Prefect's retry then succeeds.
    frankfurter.inject_fault("error", times=3, status=503)
    state = currencies_flow(return_state=True)
    assert state.is_completed()
    [run] = task_runs(state.state_details.flow_run_id)
    assert run.run_count == 2
    assert frankfurter.request_count("/v1/currencies") == 4


@pytest.mark.usefixtures("no_retry_delay")
def test_permanent_failure_is_not_retried(frankfurter: FrankfurterServer) -> None:
    frankfurter.inject_fault("error", times=10, status=404)
    state = currencies_flow(return_state=True)
    assert state.is_failed()
    [run] = task_runs(state.state_details.flow_run_id)
    assert run.run_count == 1
    assert frankfurter.request_count("/v1/currencies") == 1
    with pytest.raises(Exception, match=r"refused the request \(HTTP 404\)"):
        state.result()


@pytest.mark.usefixtures("no_retry_delay")
def test_a_refused_connection_fails_at_once_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 12.3: nothing listens on port 9. Before, dlt's client retried for half a minute and the
    # flow retried three times more; now the first connection decides.
    monkeypatch.setenv("SOURCES__CURRENCIES__BASE_URL", "http://127.0.0.1:9/v1")

    state = currencies_flow(return_state=True)

    assert state.is_failed()
    [run] = task_runs(state.state_details.flow_run_id)
    assert run.run_count == 1
    assert state.message is not None and "refused the connection" in state.message
    with pytest.raises(UpstreamUnreachableError, match=r"127\.0\.0\.1:9 .*sources\.currencies\.base_url"):
        state.result()
