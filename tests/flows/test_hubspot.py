"""The HubSpot flow under Prefect: it loads contacts, logs the summary, retries only what can heal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from flows.hubspot import hubspot_flow
from pipelines import hubspot as hubspot_pipeline
from sandbox.hubspot import CONTACTS_PATH, HubSpotServer, RecordedRequest
from tests.flows.conftest import LoadFailure
from tests.flows.prefect_api import load_report, run_logs, task_runs
from tests.sources.hubspot.portal import assert_destination_equals_portal, loaded_contacts, portal
from utils.load_summary import LoadSummary


@pytest.fixture
def hubspot(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubSpotServer]:
    with portal(monkeypatch, contacts=1_200) as server:
        yield server


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
    assert {r.status for r in hubspot.requests} == {401}


def _listings(requests: list[RecordedRequest]) -> list[RecordedRequest]:
    """Pages of the full listing of live contacts (what a first run, or a full refresh, reads)."""
    return [
        r
        for r in requests
        if r.method == "GET" and r.path == CONTACTS_PATH and "archived=true" not in r.query
    ]


@pytest.mark.usefixtures("no_retry_delay")
def test_a_retry_after_a_failure_mid_load_finishes_the_package_instead_of_listing_again(
    hubspot: HubSpotServer, warehouse: Path, load_fails_once: LoadFailure
) -> None:
    state = hubspot_flow(return_state=True)

    assert state.is_completed()
    [run] = task_runs(state.state_details.flow_run_id)
    assert run.run_count == 2
    [pending] = load_fails_once.failed_load_ids
    listed = _listings(hubspot.requests)
    # One listing in all: the first try's. The retry loaded its package and then only searched
    # for contacts modified since (the look-back window re-reads a few), instead of listing the
    # portal a second time.
    assert listed and len(listed) == len({(r.path, r.query) for r in listed})
    summary = state.result()
    assert summary.row_counts.get("contacts", 0) < 50
    assert_destination_equals_portal(warehouse, hubspot)  # every contact once
    _, _, rows = load_report(state.state_details.flow_run_id)
    [finished] = [r for r in rows if r["load id"] == pending]
    assert finished["rows loaded"] == finished["rows in table"] == 1_200


def test_full_refresh_reloads_every_contact_from_scratch(hubspot: HubSpotServer, warehouse: Path) -> None:
    assert hubspot_flow(return_state=True).is_completed()
    with duckdb.connect(str(warehouse)) as con:  # the destination drifts behind the cursor's back
        con.execute("delete from hubspot.contacts where id in (select id from hubspot.contacts limit 100)")
    cursor_before = _cursor()
    hubspot.reset_requests()

    state = hubspot_flow(full_refresh=True, return_state=True)

    assert state.is_completed()
    assert state.result().row_counts["contacts"] == 1_200
    assert _listings(hubspot.requests)  # listed from scratch, not searched from the cursor
    assert_destination_equals_portal(warehouse, hubspot)
    assert len(loaded_contacts(warehouse)) == 1_200
    assert _cursor() >= cursor_before


def _cursor() -> Any:
    state = hubspot_pipeline.pipeline().state["sources"]["hubspot"]["resources"]["contacts"]
    return state["incremental"]["lastmodifieddate"]["last_value"]
