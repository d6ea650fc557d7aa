"""The HubSpot flow under Prefect: it loads contacts, logs the summary, retries only what can heal."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
    TaskRunFilter,
)
from prefect.logging.handlers import APILogHandler

from flows.hubspot import hubspot_flow
from sandbox.hubspot import HubSpotServer
from tests.sources.hubspot.portal import assert_destination_equals_portal, portal
from utils.load_summary import LoadSummary


@pytest.fixture
def hubspot(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubSpotServer]:
    with portal(monkeypatch, contacts=1_200) as server:
        yield server


def run_logs(flow_run_id: UUID) -> list[str]:
    APILogHandler().flush()

    async def read() -> list[str]:
        async with get_client() as client:
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
            )
            return [log.message for log in logs]

    return asyncio.run(read())


def task_runs(flow_run_id: UUID) -> list[Any]:
    async def read() -> list[Any]:
        async with get_client() as client:
            return await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                task_run_filter=TaskRunFilter(),
            )

    return asyncio.run(read())


def test_flow_loads_contacts_and_logs_the_summary(hubspot: HubSpotServer, warehouse: Path) -> None:
    state = hubspot_flow(return_state=True)

    assert state.is_completed()
    summary = state.result()
    assert isinstance(summary, LoadSummary)
    assert summary.row_counts == {"contacts": 1_200}
    assert (summary.pipeline, summary.dataset, summary.destination) == ("hubspot", "hubspot", "duckdb")
    assert_destination_equals_portal(warehouse, hubspot)
    logs = run_logs(state.state_details.flow_run_id)
    assert any(line.startswith("hubspot: 1200 rows into duckdb dataset 'hubspot'") for line in logs), logs
    assert "  contacts: 1200 rows" in logs

    hubspot.modify_contacts(40)
    hubspot.archive_contacts(3)
    again = hubspot_flow(return_state=True)
    assert again.is_completed()
    assert_destination_equals_portal(warehouse, hubspot)


@pytest.mark.usefixtures("no_retry_delay")
def test_transient_failure_is_retried_by_the_task(hubspot: HubSpotServer, warehouse: Path) -> None:
    # Three 503s exhaust dlt's HTTP attempts (3 in tests): the task fails once, Prefect retries it.
    hubspot.inject_fault("error", times=3, status=503)
    state = hubspot_flow(return_state=True)

    assert state.is_completed()
    [run] = task_runs(state.state_details.flow_run_id)
    assert run.run_count == 2
    assert_destination_equals_portal(warehouse, hubspot)


@pytest.mark.usefixtures("no_retry_delay")
def test_bad_token_fails_at_once_with_the_setting_to_fix(
    hubspot: HubSpotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__HUBSPOT__ACCESS_TOKEN", "pat-na1-expired")
    state = hubspot_flow(return_state=True)

    assert state.is_failed()
    [run] = task_runs(state.state_details.flow_run_id)
    assert run.run_count == 1  # a wrong token does not heal by waiting
    with pytest.raises(Exception, match=r"sources\.hubspot\.access_token"):
        state.result()
    assert {r.status for r in hubspot.recorded_requests()} == {401}
