"""The HubSpot client against the sandbox: property batches, keyset search, pacing and errors."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from sandbox.hubspot import (
    CONTACTS_PATH,
    DEFAULT_MAX_REQUEST_LINE,
    PROPERTIES_PATH,
    SEARCH_PATH,
    HubSpotServer,
)
from sources.hubspot.client import HubSpotApi
from sources.hubspot.pacing import PacedAdapter, RollingWindowPacer
from sources.hubspot.paginators import ModifiedSinceKeysetPaginator
from sources.hubspot.schema import contact_id_of, last_modified_ms
from tests.sources.hubspot.portal import (
    TOKEN,
    SimulatedClock,
    assert_retry_after_respected,
    most_in_any_window,
    portal,
)
from utils.errors import (
    ConfigurationError,
    UpstreamRequestError,
    UpstreamUnavailableError,
    UpstreamUnreachableError,
)


def api_for(server: HubSpotServer, search_rate: float = 10_000, token: str = TOKEN) -> HubSpotApi:
    return HubSpotApi(server.base_url, token, search_requests_per_second=search_rate)


def searched(api: HubSpotApi, paginator: ModifiedSinceKeysetPaginator) -> dict[str, int]:
    """Every contact the search returned, at its newest `lastmodifieddate`, repeats folded."""
    seen: dict[str, int] = {}
    for page in api.search_modified_since(paginator):
        for contact in page:
            contact_id = contact_id_of(contact)
            seen[contact_id] = max(seen.get(contact_id, 0), last_modified_ms(contact))
    return seen


def modified_ms(server: HubSpotServer) -> dict[str, int]:
    return {
        i: last_modified_ms({"id": i, "properties": {"lastmodifieddate": c["lastmodifieddate"]}})
        for i, c in server.snapshot().items()
    }


@pytest.fixture
def wide_portal(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubSpotServer]:
    """300 long-named custom properties: too many to name in one URL."""
    with portal(monkeypatch, contacts=250, custom_properties=300) as server:
        yield server


def test_properties_are_requested_in_batches_and_merged_per_contact(wide_portal: HubSpotServer) -> None:
    api = api_for(wide_portal)
    names = [p.name for p in api.properties()]
    batches = api.property_batches(names)

    pages = list(api.list_contacts(batches))

    contacts = [c for page in pages for c in page]
    snapshot = wide_portal.snapshot()
    assert len(batches) > 1
    assert [n for batch in batches for n in batch] == names
    assert len(contacts) == len(snapshot) == 250
    assert {c["id"]: c["properties"] for c in contacts} == snapshot
    listings = [r for r in wide_portal.requests if r.path == CONTACTS_PATH]
    assert {r.status for r in listings} == {200}
    longest = max(len(f"GET {r.path}?{r.query} HTTP/1.1") for r in listings)
    assert longest < DEFAULT_MAX_REQUEST_LINE
    assert len(listings) == 3 * len(batches)  # three pages, each asked once per batch


def _after_first_request(api: HubSpotApi, action: Any) -> None:
    """Run `action` once, just after the first plain request (a later batch of the first page)."""
    original = api._request

    def request(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if not getattr(request, "done", False):
            request.done = True  # type: ignore[attr-defined]
            action()
        return result

    api._request = request  # type: ignore[method-assign]


@pytest.mark.parametrize("change", ["modify", "archive"])
def test_a_contact_that_changes_between_batches_is_left_out_not_torn(
    wide_portal: HubSpotServer, change: str
) -> None:
    api = api_for(wide_portal)
    batches = api.property_batches([p.name for p in api.properties()])
    first_page_ids = sorted(wide_portal.snapshot(), key=int)[:100]
    target = first_page_ids[10]
    mutate = wide_portal.modify_contacts if change == "modify" else wide_portal.archive_contacts
    _after_first_request(api, lambda: mutate([target]))

    first_page = next(iter(api.list_contacts(batches)))

    ids = [c["id"] for c in first_page]
    assert target not in ids
    assert ids == [i for i in first_page_ids if i != target]
    snapshot = wide_portal.snapshot()
    assert all(c["properties"] == snapshot[c["id"]] for c in first_page)


def test_keyset_search_returns_every_contact_once_across_ties_and_pages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with portal(monkeypatch, contacts=1500, custom_properties=0) as server:
        api = api_for(server)
        paginator = ModifiedSinceKeysetPaginator(0, ["email"], page_size=17)
        result = searched(api, paginator)
        expected = modified_ms(server)
        searches = server.request_count(SEARCH_PATH)
        rejected = server.request_count(SEARCH_PATH, status=400)

    stamps = sorted(expected.values())
    assert sum(1 for a, b in itertools.pairwise(stamps) if a == b) > 50  # ties exist
    assert result == expected
    assert rejected == 0
    assert searches >= 1500 // 17


def test_an_increment_larger_than_the_search_cap_sharing_one_timestamp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A mass update: 12,000 contacts, one identical lastmodifieddate, more than a search may page.
    with portal(monkeypatch, contacts=12_300, custom_properties=0) as server:
        before = max(modified_ms(server).values())
        changed = set(server.modify_contacts(12_000))
        api = api_for(server)
        paginator = ModifiedSinceKeysetPaginator(before + 1, ["email"])
        result = searched(api, paginator)
        rejected = server.request_count(SEARCH_PATH, status=400)

    assert set(result) == changed
    assert len(set(result.values())) == 1
    assert paginator.tie_blocks == 1
    assert rejected == 0


def test_contacts_changed_while_paging_are_not_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    # With offsets, a contact moving to the end of the order shifts the rest back by one and
    # the next page skips one. Keyset paging cannot skip.
    with portal(monkeypatch, contacts=600, custom_properties=0) as server:
        api = api_for(server)
        paginator = ModifiedSinceKeysetPaginator(0, ["email"], page_size=50)
        seen: dict[str, int] = {}
        for number, page in enumerate(api.search_modified_since(paginator)):
            for contact in page:
                seen[contact["id"]] = max(seen.get(contact["id"], 0), last_modified_ms(contact))
            if number < 5:
                unread = [i for i in server.snapshot() if i not in seen]
                server.modify_contacts(unread[:7])
        expected = modified_ms(server)

    assert seen == expected


class RecordingPacer(RollingWindowPacer):
    """A copy of one of the client's pacers on the shared clock, recording when it let each request go."""

    def __init__(self, like: RollingWindowPacer, clock: SimulatedClock) -> None:
        super().__init__(
            like.limit,
            like.interval_seconds,
            learn_from_headers=like.learn_from_headers,
            safety=like.safety,
            clock=clock,
            sleep=clock.sleep,
        )
        self.clock = clock
        self.send_times: list[float] = []

    def acquire(self) -> float:
        waited = super().acquire()
        self.send_times.append(self.clock.now)
        return waited


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SimulatedClock:
    """One simulated clock for the client's pacers and the sandbox portal's rate limiter.

    It moves only when a pacer sleeps, so the portal sees each request arrive at the moment the
    pacer let it go: what is paced, and whether the portal's limit is ever hit, is exact whatever
    the machine's load (real time would add scheduling delays between sending and arriving). The
    portal's limiter reads `time.monotonic`.
    """
    shared = SimulatedClock()
    monkeypatch.setattr("sandbox.hubspot.time", SimpleNamespace(monotonic=shared, time=time.time))
    return shared


def on_clock(
    api: HubSpotApi, server: HubSpotServer, clock: SimulatedClock
) -> tuple[RecordingPacer, RecordingPacer]:
    """Put both of the client's pacers on the shared clock; the general and the search one."""
    adapter = api.client.session.get_adapter(server.base_url)
    assert isinstance(adapter, PacedAdapter)
    assert (adapter.pacer, adapter.search_pacer) == (api.pacer, api.search_pacer)
    adapter.pacer = api.pacer = RecordingPacer(api.pacer, clock)
    adapter.search_pacer = api.search_pacer = RecordingPacer(api.search_pacer, clock)
    return adapter.pacer, adapter.search_pacer


def test_the_general_limit_is_never_hit_when_pacing_from_headers(
    monkeypatch: pytest.MonkeyPatch, clock: SimulatedClock
) -> None:
    with portal(
        monkeypatch, contacts=2_500, custom_properties=0, rate_limit=10, window_seconds=0.5
    ) as server:
        api = api_for(server)
        paced, _ = on_clock(api, server, clock)
        assert (paced.limit, paced.interval_seconds) != (10, 0.5)
        contacts = [c for page in api.list_contacts([["email"]]) for c in page]
        log = server.requests

    assert len(contacts) == 2_500
    assert [r.status for r in log] == [200] * 25  # the portal's limit never hit
    # The limit and window came from HubSpot's headers, and the pacer kept to them.
    assert (paced.limit, paced.interval_seconds) == (10, 0.5)
    assert len(paced.send_times) == 25
    assert most_in_any_window(paced.send_times, 0.5) <= 10
    assert paced.send_times[-1] - paced.send_times[0] >= 2 * 0.5  # it did have to wait


def test_search_is_paced_at_the_configured_rate(
    monkeypatch: pytest.MonkeyPatch, clock: SimulatedClock
) -> None:
    # The production headroom: 16 per second configured against the portal's 20.
    with portal(monkeypatch, contacts=600, custom_properties=0, search_rate_per_second=20) as server:
        api = api_for(server, search_rate=16)
        # 16 per second: 16 requests per rolling second (plus the pacer's safety margin), headers ignored.
        assert (api.search_pacer.limit, api.search_pacer.interval_seconds) == (16, 1.0)
        assert api.search_pacer.learn_from_headers is False
        general, search = on_clock(api, server, clock)
        result = searched(api, ModifiedSinceKeysetPaginator(0, ["email"], page_size=20))
        log = server.requests

    assert len(result) == 600
    searches = [r for r in log if r.path.rstrip("/").endswith("/search")]
    assert len(searches) >= 30 and 429 not in [r.status for r in log]  # the portal's 20 never hit
    # Every search request, and nothing else, went through the search pacer, once.
    assert len(search.send_times) == search.requests_sent == len(searches)
    assert general.requests_sent == len(log) - len(searches)
    # Never more than 16 in any second, and no slower than the limit needs: the first 16 go at once,
    # each further 16 one window (1 s plus the 2.5 % margin) later.
    times = search.send_times
    assert most_in_any_window(times, 1.0) <= 16
    expected_wait = ((len(times) - 1) // 16) * search.window
    assert search.waited_seconds == pytest.approx(expected_wait)
    assert times[-1] - times[0] == pytest.approx(expected_wait)


def test_429s_are_waited_out_for_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    with portal(monkeypatch, contacts=300, custom_properties=0) as server:
        server.inject_fault("rate_limit", times=2, retry_after=1)
        api = api_for(server)
        contacts = [c for page in api.list_contacts([["email"]]) for c in page]
        log = server.requests

    assert len(contacts) == 300
    assert [r.status for r in log] == [429, 429, 200, 200, 200]
    assert log[2].at - log[0].at >= 2.0
    assert_retry_after_respected(log)


def test_5xx_bursts_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    with portal(monkeypatch, contacts=300, custom_properties=0) as server:
        server.inject_fault("error", times=2, status=502, path_prefix=CONTACTS_PATH)
        contacts = [c for page in api_for(server).list_contacts([["email"]]) for c in page]
        assert server.request_count(CONTACTS_PATH, status=502) == 2
    assert len(contacts) == 300


def test_bad_token_names_the_setting_and_never_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    with portal(monkeypatch, contacts=10) as server:
        wrong = "pat-na1-not-the-right-token"
        with pytest.raises(ConfigurationError) as caught:
            api_for(server, token=wrong).properties()
        assert server.request_count(status=401) == 1  # not retried
    message = str(caught.value)
    assert "HTTP 401" in message and "sources.hubspot.access_token" in message
    assert "SOURCES__HUBSPOT__ACCESS_TOKEN" in message
    assert wrong not in message and TOKEN not in message


def test_empty_token_is_refused_before_any_request() -> None:
    with pytest.raises(ConfigurationError, match=r"sources\.hubspot\.access_token"):
        HubSpotApi("http://127.0.0.1:9", "  ")


def test_missing_scope_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with portal(monkeypatch, contacts=10) as server:
        server.inject_fault("error", times=1, status=403)
        with pytest.raises(ConfigurationError, match=r"HTTP 403.*crm\.objects\.contacts\.read"):
            api_for(server).properties()


def test_other_4xx_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    with portal(monkeypatch, contacts=10) as server:
        server.inject_fault("error", times=5, status=404)
        with pytest.raises(UpstreamRequestError, match=r"HTTP 404"):
            list(api_for(server).list_contacts([["email"]]))
        assert server.request_count() == 1


def test_persistent_5xx_is_unavailable_after_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    with portal(monkeypatch, contacts=10) as server:
        server.inject_fault("error", times=10, status=503)
        with pytest.raises(UpstreamUnavailableError, match=r"HTTP 503.*after retries"):
            api_for(server).properties()
        assert server.request_count() == 3  # RUNTIME__REQUEST_MAX_ATTEMPTS in tests


def test_unreachable_api_names_the_base_url_setting() -> None:
    # A refused first connection fails at once, permanently, naming the setting (issue 12.3).
    api = HubSpotApi("http://127.0.0.1:9", TOKEN)
    with pytest.raises(UpstreamUnreachableError, match=r"refused the connection.*sources\.hubspot\.base_url"):
        api.properties()


@pytest.mark.parametrize("attempts", [1, 4])
@pytest.mark.parametrize("path", [PROPERTIES_PATH, SEARCH_PATH])
def test_one_request_is_sent_at_most_request_max_attempts_times(
    monkeypatch: pytest.MonkeyPatch, attempts: int, path: str
) -> None:
    # One owner of retries: dlt's HTTP client (`runtime.request_max_attempts`). The pacer only
    # waits. Before, it resent each 429 up to 10 times inside each of dlt's attempts (55 sends).
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", str(attempts))
    with portal(monkeypatch, contacts=10) as server:
        server.inject_fault("rate_limit", times=100, retry_after=1, path_prefix=path)
        api = api_for(server)
        request = api.properties if path == PROPERTIES_PATH else api.latest_modified_ms
        with pytest.raises(UpstreamUnavailableError, match=r"HTTP 429.*after retries"):
            request()
        log = server.requests

    assert [r.status for r in log] == [429] * attempts
    assert_retry_after_respected(log)


def test_429s_and_5xx_together_share_one_retry_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    with portal(monkeypatch, contacts=10) as server:
        server.inject_fault("rate_limit", times=2, retry_after=1)
        server.inject_fault("error", times=10, status=503)
        with pytest.raises(UpstreamUnavailableError, match=r"HTTP 503"):
            api_for(server).properties()
        statuses = [r.status for r in server.requests]

    assert statuses == [429, 429, 503]  # RUNTIME__REQUEST_MAX_ATTEMPTS in tests: 3 sends in all
