"""The exchange_rates pipeline: incremental appends into DuckDB, and exactly-once files for Snowpipe.

The S3 tests load into the moto landing bucket through dlt's filesystem destination (the production
destination) and check the result with `SnowpipeEmulator`, which loads every object the real pipe's
PATTERN admits into DuckDB, skipping paths it has loaded before - as Snowpipe does.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dlt.destinations.impl.filesystem.filesystem import FilesystemLoadJob

from pipelines import exchange_rates as exchange_rates_pipeline
from sandbox.aws import AwsSandbox
from sandbox.frankfurter import FIRST_DAY, FrankfurterServer
from tests.snowflake.snowpipe_emulator import RATES_START, SnowpipeEmulator, expected_history
from utils.errors import MalformedPayloadError

ROOT = Path(__file__).resolve().parents[2]
DATA_KEY = re.compile(
    r"exchange_rates/exchange_rates/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/"
    r"(?P<load_id>\d+\.\d+)\.(?P<file_id>[0-9a-z]+)\.parquet"
)


def warehouse_rows(warehouse: Path) -> list[tuple[dt.date, str, str, float]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return [
            (d, b, q, r)
            for d, b, q, r in con.execute(
                "select date, base, quote, rate from exchange_rates.exchange_rates order by all"
            ).fetchall()
        ]


def next_working_days(server: FrankfurterServer, count: int) -> dt.date:
    """Publish `count` more working days; return the new last day."""
    day = server.today
    for _ in range(count):
        day += dt.timedelta(days=1)
        while not server.working_days(day, day):
            day += dt.timedelta(days=1)
    server.publish_through(day)
    return day


@pytest.fixture
def s3(landing_bucket: AwsSandbox, monkeypatch: pytest.MonkeyPatch) -> AwsSandbox:
    """Load into the landing bucket: the production default, with DLT__DESTINATION unset."""
    monkeypatch.delenv("DLT__DESTINATION")
    return landing_bucket


# -- DuckDB ----------------------------------------------------------------------------------------


def test_first_run_backfills_into_duckdb_with_types(rates_api: FrankfurterServer, warehouse: Path) -> None:
    info = exchange_rates_pipeline.run()
    assert info.destination == "duckdb"
    assert warehouse_rows(warehouse) == expected_history(rates_api, RATES_START)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        types = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'exchange_rates' and table_name = 'exchange_rates'"
            ).fetchall()
        )
    assert types["date"] == "DATE" and types["rate"] == "DOUBLE" and types["quote"] == "VARCHAR"


def test_next_runs_ask_only_for_new_days(rates_api: FrankfurterServer, warehouse: Path) -> None:
    exchange_rates_pipeline.run()
    last_loaded = rates_api.today
    new_last = next_working_days(rates_api, 3)
    rates_api.reset_requests()

    exchange_rates_pipeline.run()

    # One request, starting at the last loaded day (always published, so never a 404): its rows
    # come back and are dropped by dlt's boundary de-duplication.
    assert [r.path for r in rates_api.requests] == [f"/v1/{last_loaded}.."]
    rows = warehouse_rows(warehouse)
    assert rows == expected_history(rates_api, RATES_START)
    assert max(r[0] for r in rows) == new_last


def test_a_run_with_nothing_new_appends_nothing(rates_api: FrankfurterServer, warehouse: Path) -> None:
    exchange_rates_pipeline.run()
    before = warehouse_rows(warehouse)
    exchange_rates_pipeline.run()
    assert warehouse_rows(warehouse) == before
    trace = exchange_rates_pipeline.pipeline().last_trace
    assert trace.last_normalize_info.row_counts.get("exchange_rates", 0) == 0


def test_republished_day_is_never_appended_twice(rates_api: FrankfurterServer, warehouse: Path) -> None:
    exchange_rates_pipeline.run()
    last_loaded = rates_api.today
    original_usd = rates_api.rate(last_loaded, "USD")
    # The ECB corrects the last loaded day and an older one, then publishes a new day.
    rates_api.republish(last_loaded, "USD", 9.99)
    rates_api.republish(dt.date(2026, 2, 2), "USD", 8.88)
    next_working_days(rates_api, 1)

    exchange_rates_pipeline.run()

    rows = warehouse_rows(warehouse)
    assert len(rows) == len({(d, q) for d, _, q, _ in rows})
    assert (last_loaded, "EUR", "USD", original_usd) in rows  # append-only: the first value stays
    assert all(r != 9.99 and r != 8.88 for *_, r in rows)


def test_currency_missing_then_published_on_the_last_day_is_picked_up(
    rates_api: FrankfurterServer, warehouse: Path
) -> None:
    rates_api.withhold(rates_api.today, "JPY")
    exchange_rates_pipeline.run()
    assert (rates_api.today, "JPY") not in {(d, q) for d, _, q, _ in warehouse_rows(warehouse)}
    rates_api.clear_overrides()
    exchange_rates_pipeline.run()
    assert warehouse_rows(warehouse) == expected_history(rates_api, RATES_START)


# -- S3 landing bucket (production destination) ----------------------------------------------------


def test_files_land_in_the_documented_layout_as_typed_parquet(
    rates_api: FrankfurterServer, s3: AwsSandbox
) -> None:
    info = exchange_rates_pipeline.run()
    assert info.destination == "filesystem"
    [load_id] = info.load_ids
    keys = s3.list_objects()
    data = [m for k in keys if (m := DATA_KEY.fullmatch(k))]
    assert data, keys
    created = dt.datetime.fromtimestamp(float(load_id), dt.UTC).date()
    for match in data:
        assert match["load_id"] == load_id
        assert (int(match["y"]), int(match["m"]), int(match["d"])) == (
            created.year,
            created.month,
            created.day,
        )
    body = s3.boto3_client("s3").get_object(Bucket=s3.bucket, Key=data[0].group(0))["Body"].read()
    schema = pq.read_schema(io.BytesIO(body))
    assert schema.field("date").type == pa.date32()
    assert schema.field("rate").type == pa.float64()
    assert schema.field("base").type == pa.string() and schema.field("quote").type == pa.string()
    assert schema.field("_dlt_load_id").type == pa.string()

    # Everything else dlt writes is bookkeeping, which the pipe's PATTERN must refuse.
    snowpipe = SnowpipeEmulator(s3)
    loaded = snowpipe.ingest()
    assert sorted(loaded) == sorted(m.group(0).removeprefix("exchange_rates/") for m in data)
    assert snowpipe.ignored and all(
        p.startswith(("_dlt_loads/", "_dlt_pipeline_state/", "_dlt_version/")) or p == "init"
        for p in snowpipe.ignored
    )
    assert snowpipe.rows() == expected_history(rates_api, RATES_START)


def test_backfill_then_two_increments_land_every_row_once(
    rates_api: FrankfurterServer, s3: AwsSandbox
) -> None:
    snowpipe = SnowpipeEmulator(s3)
    exchange_rates_pipeline.run()
    assert snowpipe.ingest()
    assert snowpipe.rows() == expected_history(rates_api, RATES_START)

    for new_days in (2, 3):
        next_working_days(rates_api, new_days)
        exchange_rates_pipeline.run()
        new_files = snowpipe.ingest()
        assert new_files, "an increment with new days writes new paths"
        assert snowpipe.rows() == expected_history(rates_api, RATES_START)

    assert snowpipe.duplicates() == []
    assert snowpipe.rewritten == {}
    # Three loads, each its own paths.
    assert len({".".join(p.rsplit("/", 1)[1].split(".")[:2]) for p in snowpipe.loaded}) == 3


CRASH_SCRIPT = """
import sys
import threading
from pathlib import Path

from dlt.destinations.impl.filesystem.filesystem import FilesystemLoadJob

marker, stop_after = Path(sys.argv[1]), int(sys.argv[2])
upload = FilesystemLoadJob.run
uploaded = []
lock = threading.Lock()


def run_and_hang(self):
    upload(self)
    if not self._file_name.endswith(".parquet"):
        return
    with lock:
        uploaded.append(self.make_remote_path())
        count = len(uploaded)
    if count >= stop_after:
        partial = marker.with_suffix(".tmp")
        partial.write_text("\\n".join(uploaded))
        partial.rename(marker)
        threading.Event().wait()  # the object is in the bucket; dlt never hears of it


FilesystemLoadJob.run = run_and_hang

from pipelines.exchange_rates import run

run()
"""


def crash_in_the_middle_of_the_upload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, after: int) -> str:
    """Run the pipeline in a child process and SIGKILL it once `after` data files are in the bucket.

    Returns:
        The bucket path of the file whose upload was in flight (uploaded, not yet recorded by dlt).
    """
    # Small files and one upload at a time, so the package has many files and the kill is mid-way.
    monkeypatch.setenv("NORMALIZE__DATA_WRITER__FILE_MAX_ITEMS", "400")
    monkeypatch.setenv("LOAD__WORKERS", "1")
    marker = tmp_path / "uploaded.txt"
    child = subprocess.Popen(
        [sys.executable, "-c", CRASH_SCRIPT, str(marker), str(after)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, child.communicate()[0].decode()[-3000:]
            assert time.monotonic() < deadline, "the child never reached the upload"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    monkeypatch.delenv("NORMALIZE__DATA_WRITER__FILE_MAX_ITEMS")
    monkeypatch.delenv("LOAD__WORKERS")
    return marker.read_text().splitlines()[-1]


@pytest.mark.slow  # runs killed in subprocesses
def test_sigkill_in_the_middle_of_the_upload_then_rerun_lands_every_row_once(
    rates_api: FrankfurterServer, s3: AwsSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_flight = crash_in_the_middle_of_the_upload(tmp_path, monkeypatch, after=3)

    # Snowpipe sees what reached the bucket before the crash: some files of the package, no marker.
    snowpipe = SnowpipeEmulator(s3)
    assert len(snowpipe.ingest()) == 3
    assert not s3.list_objects(prefix="exchange_rates/_dlt_loads/")
    history = expected_history(rates_api, RATES_START)
    assert 0 < len(snowpipe.rows()) < len(history)
    assert exchange_rates_pipeline.pipeline().has_pending_data

    # The rerun finishes the pending package first - rewriting the in-flight file under the same
    # path with the same bytes - and then extracts the days published since.
    rewrites: list[str] = []
    upload = FilesystemLoadJob.run

    def record(self: Any) -> None:
        upload(self)
        rewrites.append(self.make_remote_path())

    monkeypatch.setattr(FilesystemLoadJob, "run", record)
    next_working_days(rates_api, 2)
    exchange_rates_pipeline.run()

    assert in_flight in rewrites, (in_flight, rewrites)
    snowpipe.ingest()
    assert snowpipe.rewritten == {}  # every rewrite had identical content
    assert snowpipe.duplicates() == []
    assert snowpipe.rows() == expected_history(rates_api, RATES_START)
    assert not exchange_rates_pipeline.pipeline().has_pending_data


@pytest.mark.slow  # runs killed in subprocesses
@pytest.mark.parametrize("safeguard", [True, False], ids=["safeguard", "control-without-safeguard"])
def test_sigkill_that_also_loses_the_working_directory(
    rates_api: FrankfurterServer,
    s3: AwsSandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    safeguard: bool,
) -> None:
    # A worker container killed mid-upload: its dlt working directory, with the pending package,
    # is gone. The next run starts from the state in the bucket (the last completed load).
    snowpipe = SnowpipeEmulator(s3)
    exchange_rates_pipeline.run()
    snowpipe.ingest()
    first_load = len(snowpipe.rows())
    next_working_days(rates_api, 30)  # 870 rows: three files of at most 400
    crash_in_the_middle_of_the_upload(tmp_path, monkeypatch, after=1)
    snowpipe.ingest()
    assert first_load < len(snowpipe.rows()) < len(expected_history(rates_api, RATES_START))
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "fresh-worker"))
    if not safeguard:
        monkeypatch.setattr(exchange_rates_pipeline, "rows_of_unfinished_loads", lambda _: set())

    exchange_rates_pipeline.run()
    snowpipe.ingest()

    if safeguard:
        assert snowpipe.duplicates() == []
        assert snowpipe.rows() == expected_history(rates_api, RATES_START)
        # Found once: the next load completed, so the crashed one is no longer the newest.
        assert exchange_rates_pipeline.rows_of_unfinished_loads(exchange_rates_pipeline.pipeline()) == set()
    else:
        # The control: without it, the rows of the crashed upload land a second time.
        assert snowpipe.duplicates() != []


def test_fresh_working_directory_continues_from_the_bucket(
    rates_api: FrankfurterServer, s3: AwsSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exchange_rates_pipeline.run()
    last_loaded = rates_api.today
    next_working_days(rates_api, 2)
    rates_api.reset_requests()
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "another-worker"))

    exchange_rates_pipeline.run()

    # dlt restores the cursor from the bucket's _dlt_pipeline_state/: no second backfill.
    assert [r.path for r in rates_api.requests] == [f"/v1/{last_loaded}.."]
    snowpipe = SnowpipeEmulator(s3)
    snowpipe.ingest()
    assert snowpipe.duplicates() == []
    assert snowpipe.rows() == expected_history(rates_api, RATES_START)


def test_malformed_day_fails_naming_it_and_leaves_no_file(
    rates_api: FrankfurterServer, s3: AwsSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bad day is in the third chunk: two good chunks were extracted before it.
    monkeypatch.setenv("SOURCES__EXCHANGE_RATES__CHUNK_DAYS", "30")
    rates_api.corrupt(dt.date(2026, 2, 10), "GBP", "n/a")
    with pytest.raises(MalformedPayloadError, match=r"GBP rate on 2026-02-10 .* is 'n/a'"):
        exchange_rates_pipeline.run()
    assert rates_api.request_count() == 3
    assert s3.list_objects() == []  # nothing for Snowpipe, not even a partial load
    assert not exchange_rates_pipeline.pipeline().has_pending_data

    rates_api.clear_overrides()
    exchange_rates_pipeline.run()
    snowpipe = SnowpipeEmulator(s3)
    snowpipe.ingest()
    assert snowpipe.rows() == expected_history(rates_api, RATES_START)


def test_full_history_backfill_to_the_bucket(
    rates_api: FrankfurterServer, s3: AwsSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__EXCHANGE_RATES__START_DATE", FIRST_DAY.isoformat())
    monkeypatch.setenv("NORMALIZE__DATA_WRITER__FILE_MAX_ITEMS", "100000")
    exchange_rates_pipeline.run()
    snowpipe = SnowpipeEmulator(s3)
    files = snowpipe.ingest()
    # About 200 000 rows, rotated into files of 100 000 at most.
    assert len(files) >= 2
    rows = snowpipe.rows()
    assert rows[0][0] == FIRST_DAY and rows[-1][0] == rates_api.today
    assert len(rows) == len({(d, q) for d, _, q, _ in rows})
    counts = dict(
        snowpipe.con.execute("select quote, count(*) from exchange_rates group by quote").fetchall()
    )
    assert counts["USD"] == len(rates_api.working_days(FIRST_DAY, rates_api.today))
    assert counts["CYP"] == len(rates_api.working_days(FIRST_DAY, dt.date(2007, 12, 31)))


def test_duckdb_switch_and_filesystem_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert exchange_rates_pipeline.pipeline().destination.destination_type.endswith("duckdb")
    monkeypatch.delenv("DLT__DESTINATION")
    assert exchange_rates_pipeline.pipeline().destination.destination_type.endswith("filesystem")
