"""The exchange_rates flow under Prefect: loads and logs, and a retried task never lands a row twice."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import pytest

from flows.exchange_rates import exchange_rates_flow
from sandbox.aws import AwsSandbox
from sandbox.frankfurter import FrankfurterServer
from tests.flows.prefect_api import run_logs, task_runs
from tests.snowflake.snowpipe_emulator import RATES_START, SnowpipeEmulator, expected_history
from utils.load_summary import LoadSummary


def test_flow_loads_into_duckdb_and_logs_the_summary(rates_api: FrankfurterServer, warehouse: Path) -> None:
    state = exchange_rates_flow(return_state=True)
    assert state.is_completed()
    summary = state.result()
    assert isinstance(summary, LoadSummary)
    expected = len(expected_history(rates_api, RATES_START))
    assert summary.row_counts == {"exchange_rates": expected}
    assert summary.destination == "duckdb" and summary.dataset == "exchange_rates"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from exchange_rates.exchange_rates").fetchone() == (expected,)
    logs = run_logs(state.state_details.flow_run_id)
    headline = f"exchange_rates: {expected} rows into duckdb dataset 'exchange_rates'"
    assert any(line.startswith(headline) and summary.load_ids[0] in line for line in logs), logs


@pytest.mark.usefixtures("no_retry_delay")
def test_task_retry_after_a_5xx_mid_backfill_lands_every_row_once(
    rates_api: FrankfurterServer, landing_bucket: AwsSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DLT__DESTINATION")  # the production destination: the landing bucket
    monkeypatch.setenv("SOURCES__EXCHANGE_RATES__CHUNK_DAYS", "30")
    # The third chunk fails three times: more than dlt's HTTP retries (3 attempts in tests), so the
    # task's first try fails after two chunks were extracted; Prefect's retry runs it again.
    third_chunk = f"/v1/{RATES_START + dt.timedelta(days=60)}.."
    rates_api.inject_fault("error", times=3, status=503, path_prefix=third_chunk)

    state = exchange_rates_flow(return_state=True)

    assert state.is_completed()
    [run] = task_runs(state.state_details.flow_run_id)
    assert run.run_count == 2
    assert [r.status for r in rates_api.requests if r.path.startswith(third_chunk)] == [503, 503, 503, 200]
    snowpipe = SnowpipeEmulator(landing_bucket)
    snowpipe.ingest()
    assert snowpipe.duplicates() == []
    assert snowpipe.rows() == expected_history(rates_api, RATES_START)
    # The failed try left nothing behind: every data file belongs to the retry's one load.
    summary = state.result()
    assert {".".join(p.rsplit("/", 1)[1].split(".")[:2]) for p in snowpipe.loaded} == set(summary.load_ids)


@pytest.mark.usefixtures("no_retry_delay")
def test_malformed_day_is_not_retried(rates_api: FrankfurterServer, warehouse: Path) -> None:
    rates_api.corrupt(dt.date(2026, 2, 3), "USD", None)
    state = exchange_rates_flow(return_state=True)
    assert state.is_failed()
    [run] = task_runs(state.state_details.flow_run_id)
    assert run.run_count == 1
    with pytest.raises(Exception, match=r"the USD rate on 2026-02-03 .* is missing"):
        state.result()
    assert not warehouse.exists() or not _has_table(warehouse)


def _has_table(warehouse: Path) -> bool:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        found = con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = 'exchange_rates' and table_name = 'exchange_rates'"
        ).fetchone()
    return bool(found and found[0])


def _table_rows(warehouse: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(
            "select date, base, quote, rate from exchange_rates.exchange_rates order by all"
        ).fetchall()


def test_backfill_adds_only_the_missing_days_and_leaves_the_cursor(
    rates_api: FrankfurterServer, warehouse: Path
) -> None:
    from pipelines.exchange_rates import pipeline

    assert exchange_rates_flow(return_state=True).is_completed()
    cursor = pipeline().state["sources"]["exchange_rates"]["resources"]["exchange_rates"]["incremental"]
    before = dict(cursor["date"])
    earlier = RATES_START - dt.timedelta(days=45)
    # The range overlaps the days already loaded: those are skipped, not appended twice.
    backfill = exchange_rates_flow(
        start_date=earlier, end_date=RATES_START + dt.timedelta(days=10), return_state=True
    )

    assert backfill.is_completed()
    assert [tuple(r) for r in _table_rows(warehouse)] == expected_history(rates_api, earlier)
    added = backfill.result().row_counts["exchange_rates"]
    assert added == len(expected_history(rates_api, earlier, RATES_START - dt.timedelta(days=1)))
    cursor = pipeline().state["sources"]["exchange_rates"]["resources"]["exchange_rates"]["incremental"]
    assert cursor["date"] == before  # the next scheduled run carries on from where it was
    again = exchange_rates_flow(start_date=earlier, end_date=RATES_START, return_state=True)
    assert again.result().row_counts.get("exchange_rates", 0) == 0  # a repeated backfill adds nothing


def test_backfill_into_the_landing_bucket_never_duplicates_a_row_for_snowpipe(
    rates_api: FrankfurterServer, landing_bucket: AwsSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DLT__DESTINATION")  # the production destination: the landing bucket
    assert exchange_rates_flow(return_state=True).is_completed()
    earlier = RATES_START - dt.timedelta(days=20)

    state = exchange_rates_flow(
        start_date=earlier, end_date=RATES_START + dt.timedelta(days=3), return_state=True
    )

    assert state.is_completed()
    snowpipe = SnowpipeEmulator(landing_bucket)
    snowpipe.ingest()
    assert snowpipe.duplicates() == []
    assert snowpipe.rows() == expected_history(rates_api, earlier)


@pytest.mark.usefixtures("no_retry_delay")
def test_a_backfill_needs_both_dates(rates_api: FrankfurterServer) -> None:
    state = exchange_rates_flow(start_date=RATES_START, return_state=True)
    assert state.is_failed()
    [run] = task_runs(state.state_details.flow_run_id)
    assert run.run_count == 1
    with pytest.raises(Exception, match="needs both start_date and end_date"):
        state.result()
