"""The HubSpot pipeline into DuckDB: full and incremental loads, deletions, faults, kills, bad tokens."""

from __future__ import annotations

import itertools
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests
from dlt.destinations import snowflake
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines import hubspot as hubspot_pipeline
from sandbox.hubspot import CONTACTS_PATH, MERGE_PATH, HubSpotServer
from sources.hubspot import hubspot_source
from sources.hubspot.client import HubSpotApi
from tests.sources.hubspot.portal import (
    TOKEN,
    assert_destination_equals_portal,
    assert_retry_after_respected,
    column_types,
    loaded_contacts,
    portal,
    render,
)
from utils.errors import ConfigurationError
from utils.load_summary import LoadSummary

REPO = Path(__file__).resolve().parents[2]


def contact_rows(info: LoadSummary) -> int:
    """Rows (contacts and deletions) a run loaded into `contacts`."""
    return info.row_counts.get("contacts", 0)


def list_requests(server: HubSpotServer) -> list[str]:
    """Queries of live-contact listings (the full extraction), archived listings left out."""
    return [r.query for r in server.requests if r.path == CONTACTS_PATH and "archived=true" not in r.query]


@pytest.mark.slow  # 12,000 contacts
def test_full_load_then_an_increment_over_the_search_cap_with_deletions(
    monkeypatch: pytest.MonkeyPatch, warehouse: Path
) -> None:
    # The acceptance test: 25,000 contacts, then 12,000 modified by one mass update (one
    # timestamp, more than a search can page) and 50 archived.
    with portal(monkeypatch, contacts=25_000, custom_properties=20) as server:
        hubspot_pipeline.run()
        assert_destination_equals_portal(warehouse, server)
        assert len(list_requests(server)) == 250

        modified = set(server.modify_contacts(12_000))
        archived = set(server.archive_contacts(50))
        server.reset_requests()
        info = hubspot_pipeline.run()

        assert_destination_equals_portal(warehouse, server)
        assert list_requests(server) == []  # searched, not listed again
        # The increment, not the table: the modified and archived contacts plus the lookback's few.
        assert len(modified | archived) <= contact_rows(info) <= len(modified | archived) + 100
        assert server.request_count(status=400) == 0

    types = column_types(warehouse)
    assert types["annualrevenue"] == "DECIMAL(38,18)"
    assert types["hs_object_id"] == "BIGINT"
    assert types["date_of_birth"] == "DATE"
    assert types["lastmodifieddate"] == types["createdate"] == "TIMESTAMP WITH TIME ZONE"
    assert types["hs_email_optout"] == types["archived"] == "BOOLEAN"
    assert types["email"] == "VARCHAR"


def test_contacts_changing_during_the_first_listing_are_loaded_whole(
    monkeypatch: pytest.MonkeyPatch, warehouse: Path
) -> None:
    # 300 long-named custom properties: each page is read in several property batches. Contacts
    # change between those requests; the catch-up search must load their new version, whole.
    with portal(monkeypatch, contacts=450, custom_properties=300) as server:
        ids = sorted(server.snapshot(), key=int)
        original = HubSpotApi._request
        calls = itertools.count()

        def request(api: HubSpotApi, *args: Any, **kwargs: Any) -> Any:
            result = original(api, *args, **kwargs)
            call = next(calls)
            if call in (2, 7):  # calls 0 and 1 are the properties and the high-water mark
                server.modify_contacts([ids[5], ids[150 + call]])
            return result

        monkeypatch.setattr(HubSpotApi, "_request", request)
        hubspot_pipeline.run()
        assert next(calls) > 7
        assert_destination_equals_portal(warehouse, server)


def test_a_run_with_nothing_new_loads_no_contacts(monkeypatch: pytest.MonkeyPatch, warehouse: Path) -> None:
    monkeypatch.setenv("SOURCES__HUBSPOT__LOOKBACK_SECONDS", "0")
    with portal(monkeypatch, contacts=800) as server:
        server.archive_contacts(2)  # before the first run: deleted then, not again and again
        # ...once older than the deletion watermark's margin (the `Date` header's whole second
        # plus one): a contact archived just before a pass is deliberately emitted again.
        time.sleep(2.1)
        first = hubspot_pipeline.run()
        assert contact_rows(first) == 798 + 2
        before = loaded_contacts(warehouse)
        info = hubspot_pipeline.run()
        assert contact_rows(info) == 0
        assert loaded_contacts(warehouse) == before

        changed = server.modify_contacts(3)
        info = hubspot_pipeline.run()
        assert contact_rows(info) == 3
        assert_destination_equals_portal(warehouse, server)
        assert {r["id"] for r in loaded_contacts(warehouse) if r["_dlt_load_id"] == info.load_ids[0]} == set(
            changed
        )


def test_contacts_added_and_archived_between_runs(monkeypatch: pytest.MonkeyPatch, warehouse: Path) -> None:
    with portal(monkeypatch, contacts=600) as server:
        hubspot_pipeline.run()
        server.archive_contacts(5)
        added = server.add_contacts(4)
        hubspot_pipeline.run()
        assert_destination_equals_portal(warehouse, server)
        server.archive_contacts(added[:2])
        hubspot_pipeline.run()
        assert_destination_equals_portal(warehouse, server)
        assert server.archived_ids() & {r["id"] for r in loaded_contacts(warehouse)} == set()


def test_bad_token_is_a_clear_error_and_loads_nothing(
    monkeypatch: pytest.MonkeyPatch, warehouse: Path
) -> None:
    with portal(monkeypatch, contacts=200) as server:
        monkeypatch.setenv("SOURCES__HUBSPOT__ACCESS_TOKEN", "pat-na1-revoked-token")
        with pytest.raises(ConfigurationError) as caught:
            hubspot_pipeline.run()
        statuses = {r.status for r in server.requests}

    message = str(caught.value)
    assert "HTTP 401" in message and "sources.hubspot.access_token" in message
    assert "pat-na1-revoked-token" not in message
    assert statuses == {401}
    assert not hubspot_pipeline.pipeline().has_pending_data
    if warehouse.exists():
        with duckdb.connect(str(warehouse), read_only=True) as con:
            tables = con.execute(
                "select table_name from information_schema.tables where table_schema = 'hubspot'"
            )
            assert tables.fetchall() == []


def test_missing_token_names_the_secret_before_any_request(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with portal(monkeypatch, contacts=10) as server:
        monkeypatch.delenv("SOURCES__HUBSPOT__ACCESS_TOKEN")
        monkeypatch.chdir(tmp_path)  # no .dlt/secrets.toml from a developer's checkout
        monkeypatch.setenv("SOURCES__HUBSPOT__BASE_URL", server.base_url)
        with pytest.raises(ConfigurationError, match=r"sources\.hubspot\.access_token"):
            hubspot_pipeline.run()
        assert server.request_count() == 0


class FaultInjector:
    """Keeps HubSpot misbehaving during a run: every few requests, a burst of 429s or of 5xx."""

    def __init__(self, server: HubSpotServer, every: int) -> None:
        self.server = server
        self.every = every
        self.kinds = itertools.cycle(["rate_limit", "error"])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FaultInjector:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.server.clear_faults()

    def _run(self) -> None:
        injected_at = 0
        while not self._stop.wait(0.005):
            count = self.server.request_count()
            if count - injected_at >= self.every:
                injected_at = count
                if next(self.kinds) == "rate_limit":
                    self.server.inject_fault("rate_limit", times=2, retry_after=1)
                else:
                    self.server.inject_fault("error", times=2, status=503)


def test_sustained_429s_and_5xx_bursts_still_load_every_contact(
    monkeypatch: pytest.MonkeyPatch, warehouse: Path
) -> None:
    with portal(monkeypatch, contacts=3_000) as server:
        with FaultInjector(server, every=8):
            hubspot_pipeline.run()
        log = server.requests
        assert_destination_equals_portal(warehouse, server)

    throttled = sum(1 for r in log if r.status == 429)
    failed = sum(1 for r in log if r.status == 503)
    succeeded = sum(1 for r in log if r.status == 200)
    assert throttled >= 4 and failed >= 4
    assert len(log) == succeeded + throttled + failed
    # Properties, high-water mark, 30 list pages, catch-up search, archived listing: one success
    # each - every failure cost exactly one more request, no hammering.
    assert succeeded == 1 + 1 + math.ceil(3_000 / 100) + 1 + 1
    assert_retry_after_respected(log)


def _spawn_run(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "from pipelines.hubspot import run; run()"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _kill_when(process: subprocess.Popen[bytes], condition: Callable[[], bool], timeout: float = 60) -> bool:
    """SIGKILL the process as soon as `condition` holds; False if it finished first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if condition():
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            return True
        time.sleep(0.005)
    process.kill()
    raise AssertionError("the pipeline neither finished nor reached the kill point")


@pytest.fixture
def slow_portal(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubSpotServer]:
    """5,000 contacts at 40 requests per second, so a run lasts long enough to be killed."""
    with portal(monkeypatch, contacts=5_000, rate_limit=20, window_seconds=0.5) as server:
        yield server


@pytest.mark.slow  # runs killed in subprocesses
@pytest.mark.parametrize("moment", ["first run, extracting", "first run, loading", "increment, extracting"])
def test_killed_mid_run_then_rerun_loses_and_doubles_nothing(
    slow_portal: HubSpotServer, warehouse: Path, tmp_path: Path, moment: str
) -> None:
    server = slow_portal
    if moment.startswith("increment"):
        hubspot_pipeline.run()
        server.modify_contacts(2_500)
        server.archive_contacts(20)
        server.reset_requests()
    packages = tmp_path / "dlt" / "pipelines" / "hubspot" / "load" / "normalized"
    conditions: dict[str, Callable[[], bool]] = {
        "first run, extracting": lambda: server.request_count() >= 20,
        "first run, loading": lambda: packages.exists() and any(packages.iterdir()),
        "increment, extracting": lambda: server.request_count() >= 4,
    }

    process = _spawn_run(dict(os.environ))
    killed = _kill_when(process, conditions[moment])
    if moment != "first run, loading":
        assert process.stderr is not None
        assert killed, f"the run ended before it could be killed: {process.stderr.read().decode()[-2000:]}"
    server.modify_contacts(30)  # and life goes on between the crash and the rerun
    hubspot_pipeline.run()

    assert_destination_equals_portal(warehouse, server)


def test_a_package_left_both_extracted_and_normalized_by_a_kill_is_recovered(
    monkeypatch: pytest.MonkeyPatch, warehouse: Path
) -> None:
    # Recreate, deterministically, a SIGKILL between dlt's two commit steps of normalize: the
    # package was renamed into load/normalized but its extracted copy was not yet deleted.
    with portal(monkeypatch, contacts=700) as server:
        pipeline = hubspot_pipeline.pipeline()
        pipeline.extract(hubspot_source(), loader_file_format="parquet")
        extracted = Path(pipeline.working_dir) / "normalize" / "extracted"
        [package] = list(extracted.iterdir())
        kept = Path(shutil.copytree(package, extracted.parent / "kept"))
        pipeline.normalize()
        kept.rename(package)

        # Without the repair (in utils.run_engine) dlt's normalize fails on every
        # later run, so the pipeline is stuck.
        with pytest.raises(PipelineStepFailed, match="Directory not empty"):
            hubspot_pipeline.pipeline().normalize()
        assert package.exists()

        hubspot_pipeline.run()
        assert not package.exists()
        assert_destination_equals_portal(warehouse, server)


# -- numbers exact (issue 11.2) ----------------------------------------------------------------

EXACT_NUMBERS = {
    "annualrevenue": "12345678901234567",  # 17 digits: DOUBLE loaded 12345678901234568
    "num_notes": "-98765432109876543",
    "hubspotscore": "1.3333333333333333",
    "sandbox_number_property_with_a_long_internal_name_001": "99999999999999999999.999999999999999999",
    "sandbox_number_property_with_a_long_internal_name_007": "0.000000000000000001",
}


def test_numbers_load_exactly_and_too_long_ones_as_text(
    monkeypatch: pytest.MonkeyPatch, warehouse: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with portal(monkeypatch, contacts=300, custom_properties=12) as server:
        ids = sorted(server.snapshot(), key=int)
        server.set_properties(ids[:3], EXACT_NUMBERS)
        # 21 integer digits, 19 decimals: DECIMAL(38,18) cannot hold them, so they stay text.
        server.set_properties(
            [ids[3]], {"annualrevenue": "123456789012345678901", "num_notes": "0.1234567890123456789"}
        )
        with caplog.at_level(logging.WARNING, logger="sources.hubspot"):
            hubspot_pipeline.run()
        snapshot = server.snapshot()
        # The sandbox's own numbers include 17-digit integers and 16-decimal fractions too.
        assert_destination_equals_portal(warehouse, server)

    rows = {r["id"]: r for r in loaded_contacts(warehouse)}
    for contact_id in ids[:3]:
        assert {name: rows[contact_id][name] for name in EXACT_NUMBERS} == {
            name: Decimal(text) for name, text in EXACT_NUMBERS.items()
        }
    assert (rows[ids[3]]["annualrevenue"], rows[ids[3]]["annualrevenue__v_text"]) == (
        None,
        "123456789012345678901",
    )
    assert (rows[ids[3]]["num_notes"], rows[ids[3]]["num_notes__v_text"]) == (None, "0.1234567890123456789")
    assert snapshot[ids[3]]["annualrevenue"] == "123456789012345678901"
    assert any(
        "property annualrevenue" in m and "contacts.annualrevenue__v_text" in m for m in caplog.messages
    )

    types = column_types(warehouse)
    numbers = [p for p in EXACT_NUMBERS if p != "hs_object_id"]
    assert {types[name] for name in numbers} == {"DECIMAL(38,18)"}
    # ...and the type dlt creates on Snowflake (NUMBER: at most 38 digits, scale at most 37).
    schema = hubspot_pipeline.pipeline().default_schema
    table = schema.get_table("contacts")
    mapper = snowflake().capabilities().get_type_mapper()
    snowflake_types = {
        name: mapper.to_destination_type(table["columns"][name], table) for name in [*numbers, "hs_object_id"]
    }
    assert snowflake_types == {**dict.fromkeys(numbers, "NUMBER(38,18)"), "hs_object_id": "NUMBER(19,0)"}


# -- merged contacts (issue 11.4) ---------------------------------------------------------------


def merge(server: HubSpotServer, primary: str, loser: str) -> dict[str, Any]:
    """Merge through the sandbox's HTTP API, as a HubSpot user or integration would."""
    response = requests.post(
        server.base_url + MERGE_PATH,
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={"primaryObjectId": primary, "objectIdToMerge": loser},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_merged_away_contacts_leave_the_table_on_the_next_incremental_run(
    monkeypatch: pytest.MonkeyPatch, warehouse: Path
) -> None:
    with portal(monkeypatch, contacts=400) as server:
        hubspot_pipeline.run()
        ids = sorted(server.snapshot(), key=int)
        assert merge(server, ids[10], ids[20])["id"] == ids[10]
        merge(server, ids[30], ids[40])
        merge(server, ids[10], ids[30])  # a chain: 40 went into 30, 30 into 10
        renumbered = server.merge_contacts(ids[50], ids[60], new_id=True)  # both old ids go
        hubspot_pipeline.run()

        loaded = {r["id"]: r for r in loaded_contacts(warehouse)}
        assert {ids[20], ids[30], ids[40], ids[50], ids[60]} & set(loaded) == set()
        assert renumbered in loaded
        assert set(loaded[ids[10]]["hs_merged_object_ids"].split(";")) == {ids[20], ids[30], ids[40]}
        assert_destination_equals_portal(warehouse, server)


def test_contacts_merged_during_the_first_listing_are_not_loaded(
    monkeypatch: pytest.MonkeyPatch, warehouse: Path
) -> None:
    # Merges after the first page was read: one loser already read (its survivor not yet), one
    # survivor already read (its loser not yet).
    with portal(monkeypatch, contacts=450) as server:
        ids = sorted(server.snapshot(), key=int)
        original = HubSpotApi.list_contacts

        def list_contacts(api: HubSpotApi, *args: Any, **kwargs: Any) -> Iterator[list[dict[str, Any]]]:
            for number, page in enumerate(original(api, *args, **kwargs)):
                yield page
                if number == 0:
                    merge(server, ids[300], ids[5])
                    merge(server, ids[6], ids[350])

        monkeypatch.setattr(HubSpotApi, "list_contacts", list_contacts)
        hubspot_pipeline.run()

        assert {ids[5], ids[350]} & {r["id"] for r in loaded_contacts(warehouse)} == set()
        assert_destination_equals_portal(warehouse, server)


# -- a property that changes type, a value that does not match its type (issue 11.8) ---------------


def test_a_property_that_changes_type_does_not_block_later_runs(
    monkeypatch: pytest.MonkeyPatch, warehouse: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SOURCES__HUBSPOT__LOOKBACK_SECONDS", "0")  # so run 2 does not re-read ids[:10]
    with portal(monkeypatch, contacts=300) as server:
        ids = sorted(server.snapshot(), key=int)
        server.define_property("renewal_at", "number")
        server.set_properties(ids[:10], {"renewal_at": "20260131"})
        server.modify_contacts([ids[200]])
        hubspot_pipeline.run()

        server.define_property("renewal_at", "datetime")
        server.set_properties(ids[:5], {"renewal_at": "2026-01-31T00:00:00.000Z"})
        changed = server.modify_contacts(ids[100:110])
        with caplog.at_level(logging.WARNING, logger="sources.hubspot"):
            hubspot_pipeline.run()  # failed: Unimplemented type for cast (TIMESTAMP WITH TIME ZONE -> DOUBLE)
        snapshot = server.snapshot()

        rows = {r["id"]: r for r in loaded_contacts(warehouse)}
        # Every other change loaded...
        assert all(render(rows[i]["jobtitle"]) == snapshot[i]["jobtitle"] for i in changed)
        # ...and the new values went into a column of the new type, beside the old one.
        types = column_types(warehouse)
        assert (types["renewal_at"], types["renewal_at__v_timestamp"]) == (
            "DECIMAL(38,18)",
            "TIMESTAMP WITH TIME ZONE",
        )
        assert {render(rows[i]["renewal_at__v_timestamp"]) for i in ids[:5]} == {"2026-01-31T00:00:00.000Z"}
        assert {rows[i]["renewal_at"] for i in ids[:5]} == {None}
        assert {rows[i]["renewal_at"] for i in ids[5:10]} == {Decimal(20260131)}
        [warning] = [m for m in caplog.messages if "property renewal_at" in m]
        assert "contacts.renewal_at__v_timestamp" in warning
        assert "prefect deployment run hubspot/full-refresh" in warning

        # The remedy the warning names: a full refresh makes the column the new type.
        server.set_properties(ids[5:10], {"renewal_at": None})  # HubSpot cleared what it could not convert
        hubspot_pipeline.run(full_refresh=True)
        types = column_types(warehouse)
        assert types["renewal_at"] == "TIMESTAMP WITH TIME ZONE"
        assert "renewal_at__v_timestamp" not in types
        assert_destination_equals_portal(warehouse, server)


def test_one_value_that_does_not_match_its_type_blocks_no_contact(
    monkeypatch: pytest.MonkeyPatch, warehouse: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with portal(monkeypatch, contacts=300) as server:
        hubspot_pipeline.run()
        ids = sorted(server.snapshot(), key=int)
        server.set_properties([ids[7]], {"annualrevenue": "12k", "date_of_birth": "31/01/1990"})
        # Looks like a timestamp: kept as the text it is, not typed by dlt's timestamp detection.
        server.set_properties([ids[8]], {"hubspotscore": "2026-01-31T00:00:00.000Z"})
        # A NUL character in text survives (Parquet; dlt's DuckDB INSERT writer would drop it).
        server.set_properties([ids[9]], {"jobtitle": "Head\x00of Data"})
        changed = server.modify_contacts(ids[50:60])
        with caplog.at_level(logging.WARNING, logger="sources.hubspot"):
            hubspot_pipeline.run()  # failed: MalformedPayloadError, nothing loaded
        snapshot = server.snapshot()

    rows = {r["id"]: r for r in loaded_contacts(warehouse)}
    assert all(render(rows[i]["jobtitle"]) == snapshot[i]["jobtitle"] for i in changed)
    bad = rows[ids[7]]
    assert (bad["annualrevenue"], bad["annualrevenue__v_text"]) == (None, "12k")
    assert (bad["date_of_birth"], bad["date_of_birth__v_text"]) == (None, "31/01/1990")
    assert render(bad["email"]) == snapshot[ids[7]]["email"]
    assert sum(f"contact {ids[7]}" in m for m in caplog.messages) == 2
    assert rows[ids[8]]["hubspotscore__v_text"] == "2026-01-31T00:00:00.000Z"
    assert column_types(warehouse)["hubspotscore__v_text"] == "VARCHAR"
    assert rows[ids[9]]["jobtitle"] == "Head\x00of Data"
