"""The HubSpot pipeline into DuckDB: full and incremental loads, deletions, faults, kills, bad tokens."""

from __future__ import annotations

import itertools
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dlt.common.pipeline import LoadInfo
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines import hubspot as hubspot_pipeline
from sandbox.hubspot import CONTACTS_PATH, HubSpotServer
from sources.hubspot import hubspot_source
from sources.hubspot.client import HubSpotApi
from tests.sources.hubspot.portal import (
    assert_destination_equals_portal,
    assert_retry_after_respected,
    column_types,
    loaded_contacts,
    portal,
)
from utils.errors import ConfigurationError
from utils.load_summary import LoadSummary

REPO = Path(__file__).resolve().parents[2]


def contact_rows(info: LoadInfo) -> int:
    """Rows (contacts and deletions) a run loaded into `contacts`."""
    return LoadSummary.from_load_info(info).row_counts.get("contacts", 0)


def list_requests(server: HubSpotServer) -> list[str]:
    """Queries of live-contact listings (the full extraction), archived listings left out."""
    return [
        r.query
        for r in server.recorded_requests()
        if r.path == CONTACTS_PATH and "archived=true" not in r.query
    ]


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
    assert types["annualrevenue"] == "DOUBLE"
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
        assert {r["id"] for r in loaded_contacts(warehouse) if r["_dlt_load_id"] == info.loads_ids[0]} == set(
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
        statuses = {r.status for r in server.recorded_requests()}

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
        log = server.recorded_requests()
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

        # Without the repair (in utils.destinations.run_pipeline) dlt's normalize fails on every
        # later run, so the pipeline is stuck.
        with pytest.raises(PipelineStepFailed, match="Directory not empty"):
            hubspot_pipeline.pipeline().normalize()
        assert package.exists()

        hubspot_pipeline.run()
        assert not package.exists()
        assert_destination_equals_portal(warehouse, server)
