"""The HubSpot CRM v3 sandbox speaks HubSpot's contract: auth, paging, search, limits, faults."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox.hubspot import (
    CONTACTS_PATH,
    DEFAULT_MAX_REQUEST_LINE,
    MERGE_PATH,
    MERGED_IDS_PROPERTY,
    PROPERTIES_PATH,
    SEARCH_PATH,
    HubSpotServer,
)

TOKEN = "pat-na1-sandbox-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RATE_HEADERS = (
    "X-HubSpot-RateLimit-Max",
    "X-HubSpot-RateLimit-Remaining",
    "X-HubSpot-RateLimit-Interval-Milliseconds",
    "X-HubSpot-RateLimit-Daily",
    "X-HubSpot-RateLimit-Daily-Remaining",
)


@pytest.fixture(scope="module")
def portal() -> Iterator[HubSpotServer]:
    """A read-only portal with generous limits and 300 long-named custom properties."""
    with HubSpotServer(
        token=TOKEN,
        contacts=1000,
        custom_properties=300,
        rate_limit=100_000,
        search_rate_per_second=1_000,
    ) as server:
        yield server


@pytest.fixture
def small_portal() -> Iterator[HubSpotServer]:
    """A fresh portal that tests may mutate."""
    with HubSpotServer(
        token=TOKEN, contacts=200, custom_properties=6, rate_limit=100_000, search_rate_per_second=1_000
    ) as server:
        yield server


def _get(server: HubSpotServer, path: str, **params: Any) -> requests.Response:
    return requests.get(server.base_url + path, headers=AUTH, params=params, timeout=10)


def _search(server: HubSpotServer, body: dict[str, Any]) -> requests.Response:
    return requests.post(server.base_url + SEARCH_PATH, headers=AUTH, json=body, timeout=10)


def _list_all(server: HubSpotServer, **params: Any) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page_params = dict(params, limit=100) | ({"after": after} if after else {})
        response = _get(server, CONTACTS_PATH, **page_params)
        assert response.status_code == 200, response.text
        body = response.json()
        results.extend(body["results"])
        after = body.get("paging", {}).get("next", {}).get("after")
        if after is None:
            return results


def _search_all(server: HubSpotServer, body: dict[str, Any]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    after = "0"
    while True:
        response = _search(server, body | {"after": after})
        assert response.status_code == 200, response.text
        page = response.json()
        results.extend(page["results"])
        after = page.get("paging", {}).get("next", {}).get("after")
        if after is None:
            return results


def _modified_after(stamp: str) -> dict[str, Any]:
    return {
        "filterGroups": [
            {"filters": [{"propertyName": "lastmodifieddate", "operator": "GT", "value": stamp}]}
        ],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["jobtitle"],
        "limit": 200,
    }


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}])
def test_bad_or_missing_token_gets_hubspots_401_body(portal: HubSpotServer, headers: dict[str, str]) -> None:
    response = requests.get(portal.base_url + CONTACTS_PATH, headers=headers, timeout=10)

    assert response.status_code == 401
    body = response.json()
    assert body["status"] == "error"
    assert body["category"] == "INVALID_AUTHENTICATION"
    assert body["message"].startswith("Authentication credentials not found")
    assert body["correlationId"]
    assert TOKEN not in response.text


def test_list_pagination_returns_every_live_contact_once(portal: HubSpotServer) -> None:
    results = _list_all(portal, properties="email,phone,lifecyclestage")

    ids = [r["id"] for r in results]
    assert len(ids) == len(set(ids)) == 1000
    assert set(ids) == set(portal.snapshot())
    assert ids == sorted(ids, key=int)
    first = results[0]
    assert set(first["properties"]) == {
        "email",
        "phone",
        "lifecyclestage",
        "hs_object_id",
        "createdate",
        "lastmodifieddate",
    }
    assert first["properties"]["hs_object_id"] == first["id"]
    assert first["updatedAt"] == first["properties"]["lastmodifieddate"]
    assert first["archived"] is False
    assert "archivedAt" not in first
    assert all(isinstance(v, str) or v is None for r in results for v in r["properties"].values())


def test_list_defaults_limit_cap_and_paging_link(portal: HubSpotServer) -> None:
    default = _get(portal, CONTACTS_PATH).json()
    capped = _get(portal, CONTACTS_PATH, limit=500).json()

    assert len(default["results"]) == 10
    assert set(default["results"][0]["properties"]) == {
        "firstname",
        "lastname",
        "email",
        "createdate",
        "lastmodifieddate",
        "hs_object_id",
    }
    assert len(capped["results"]) == 100
    link = default["paging"]["next"]["link"]
    assert link.startswith(portal.base_url + CONTACTS_PATH)
    following = requests.get(link, headers=AUTH, timeout=10).json()
    assert int(following["results"][0]["id"]) > int(default["results"][-1]["id"])


def test_properties_endpoint_describes_standard_and_custom_properties(portal: HubSpotServer) -> None:
    response = _get(portal, PROPERTIES_PATH)

    assert response.status_code == 200
    properties = {p["name"]: p for p in response.json()["results"]}
    assert {"email", "lifecyclestage", "createdate", "lastmodifieddate", "hs_object_id"} <= set(properties)
    custom = [p for p in properties.values() if not p["hubspotDefined"]]
    assert len(custom) == 300
    assert {p["type"] for p in properties.values()} == {
        "string",
        "number",
        "date",
        "datetime",
        "enumeration",
        "bool",
    }
    assert properties["lifecyclestage"]["fieldType"] == "select"
    assert "customer" in {o["value"] for o in properties["lifecyclestage"]["options"]}
    assert all({"label", "groupName", "fieldType"} <= set(p) for p in properties.values())
    assert len(",".join(properties)) > DEFAULT_MAX_REQUEST_LINE


def test_over_long_property_list_gets_414_and_batches_work(portal: HubSpotServer) -> None:
    names = [p["name"] for p in _get(portal, PROPERTIES_PATH).json()["results"]]

    too_long = _get(portal, CONTACTS_PATH, properties=",".join(names), limit=1)
    batches = [names[i : i + 100] for i in range(0, len(names), 100)]
    pages = [_get(portal, CONTACTS_PATH, properties=",".join(batch), limit=1) for batch in batches]

    assert too_long.status_code == 414
    assert all(page.status_code == 200 for page in pages)
    merged: dict[str, Any] = {}
    for page in pages:
        merged |= page.json()["results"][0]["properties"]
    contact_id = pages[0].json()["results"][0]["id"]
    assert merged == portal.snapshot()[contact_id]


def test_snapshot_values_look_like_hubspot_values(portal: HubSpotServer) -> None:
    snapshot = portal.snapshot()
    values = [v for contact in snapshot.values() for v in contact.values()]
    first_names = {c["firstname"] for c in snapshot.values()}
    dates = [c["date_of_birth"] for c in snapshot.values() if c["date_of_birth"]]
    flags = {c["hs_email_optout"] for c in snapshot.values()}

    assert all(v is None or isinstance(v, str) for v in values)
    assert None in values
    assert {"Zoë", "Łukasz", "花子"} <= first_names
    assert any(c["lastname"] == "Ñúñez" for c in snapshot.values())
    assert all(len(d) == 10 and d[4] == "-" for d in dates)
    assert flags == {"true", "false", None}
    created = next(iter(snapshot.values()))["createdate"]
    assert created is not None
    assert created.endswith("Z")
    assert len(created) == 24
    assert (
        HubSpotServer(token=TOKEN, contacts=50, custom_properties=6).snapshot()
        == HubSpotServer(token=TOKEN, contacts=50, custom_properties=6).snapshot()
    )


def test_search_filters_sorts_and_pages(portal: HubSpotServer) -> None:
    snapshot = portal.snapshot()
    cutoff = sorted(c["lastmodifieddate"] or "" for c in snapshot.values())[400]
    expected = {i for i, c in snapshot.items() if (c["lastmodifieddate"] or "") >= cutoff}
    body = {
        "filterGroups": [
            {"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": cutoff}]}
        ],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["email"],
        "limit": 200,
    }

    first = _search(portal, body).json()
    results = _search_all(portal, body)

    assert first["total"] == len(expected)
    assert first["paging"]["next"] == {"after": "200"}
    assert [r["id"] for r in results if r["id"] in expected] == [r["id"] for r in results]
    assert {r["id"] for r in results} == expected
    assert len(results) == len(expected)
    stamps = [(r["properties"]["lastmodifieddate"], int(r["id"])) for r in results]
    assert stamps == sorted(stamps)
    assert set(results[0]["properties"]) == {"email", "hs_object_id", "createdate", "lastmodifieddate"}


def test_search_by_object_id_and_epoch_ms_between(portal: HubSpotServer) -> None:
    ids = sorted(portal.snapshot(), key=int)
    by_id = {
        "filterGroups": [
            {"filters": [{"propertyName": "hs_object_id", "operator": "GT", "value": ids[989]}]}
        ],
        "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
        "limit": 200,
    }
    between = {
        "filterGroups": [
            {
                "filters": [
                    {
                        "propertyName": "createdate",
                        "operator": "BETWEEN",
                        "value": "0",
                        "highValue": str(2**41),
                    }
                ]
            }
        ],
        "limit": 1,
    }

    tail = _search(portal, by_id).json()
    everything = _search(portal, between).json()

    assert [r["id"] for r in tail["results"]] == ids[990:]
    assert "paging" not in tail
    assert everything["total"] == 1000


@pytest.mark.parametrize(
    "body",
    [
        {"limit": 201},
        {"sorts": [{"propertyName": "nope", "direction": "ASCENDING"}]},
        {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "LIKE", "value": "x"}]}]},
    ],
)
def test_invalid_search_requests_get_validation_errors(portal: HubSpotServer, body: dict[str, Any]) -> None:
    response = _search(portal, body)

    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"


def test_search_cannot_page_past_10000_results() -> None:
    with HubSpotServer(
        token=TOKEN, contacts=10_050, custom_properties=0, search_rate_per_second=1_000
    ) as server:
        body: dict[str, Any] = {"sorts": ["hs_object_id"], "limit": 200}

        last_allowed = _search(server, body | {"after": "9800"})
        beyond = _search(server, body | {"after": last_allowed.json()["paging"]["next"]["after"]})

    assert last_allowed.status_code == 200
    assert last_allowed.json()["total"] == 10_050
    assert last_allowed.json()["paging"]["next"]["after"] == "10000"
    assert beyond.status_code == 400
    error = beyond.json()
    assert error["status"] == "error"
    assert error["category"] == "VALIDATION_ERROR"
    assert "10000" in error["message"]


def test_rolling_rate_limit_headers_and_429_with_retry_after() -> None:
    with HubSpotServer(token=TOKEN, contacts=20, rate_limit=3, window_seconds=1.0) as server:
        accepted = [_get(server, CONTACTS_PATH) for _ in range(3)]
        rejected = _get(server, CONTACTS_PATH)
        retry_after = float(rejected.headers["Retry-After"])
        time.sleep(retry_after)
        after_wait = _get(server, CONTACTS_PATH)
        log = server.requests

    assert [r.status_code for r in accepted] == [200, 200, 200]
    assert all(h in r.headers for r in accepted for h in RATE_HEADERS)
    assert [r.headers["X-HubSpot-RateLimit-Remaining"] for r in accepted] == ["2", "1", "0"]
    assert accepted[0].headers["X-HubSpot-RateLimit-Max"] == "3"
    assert accepted[0].headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "1000"
    assert rejected.status_code == 429
    assert retry_after >= 1
    assert rejected.json()["policyName"] == "TEN_SECONDLY_ROLLING"
    assert rejected.json()["errorType"] == "RATE_LIMIT"
    assert after_wait.status_code == 200
    assert [r.status for r in log] == [200, 200, 200, 429, 200]
    assert log[3].retry_after == retry_after
    assert log[4].at - log[3].at >= retry_after


def test_search_has_its_own_limit_and_no_rate_limit_headers() -> None:
    with HubSpotServer(token=TOKEN, contacts=20, rate_limit=100, search_rate_per_second=2) as server:
        searches = [_search(server, {"limit": 1}) for _ in range(3)]
        listing = _get(server, CONTACTS_PATH)

    assert [r.status_code for r in searches] == [200, 200, 429]
    assert searches[2].json()["errorType"] == "RATE_LIMIT"
    assert not any(h.lower().startswith("x-hubspot-ratelimit") for r in searches for h in r.headers)
    assert listing.status_code == 200
    assert listing.headers["X-HubSpot-RateLimit-Remaining"] == "99"


def test_mutations_show_up_in_listing_search_and_snapshot(small_portal: HubSpotServer) -> None:
    before = small_portal.snapshot()
    newest = max(int(c["hs_object_id"] or 0) for c in before.values())
    high_water = _search(
        small_portal, {"sorts": [{"propertyName": "lastmodifieddate", "direction": "DESCENDING"}]}
    )
    latest = high_water.json()["results"][0]["properties"]["lastmodifieddate"]

    modified = small_portal.modify_contacts(3)
    archived = small_portal.archive_contacts(2)
    added = small_portal.add_contacts(4)
    again = small_portal.modify_contacts([next(i for i in modified if i not in archived)])

    after = small_portal.snapshot()
    changed = _search_all(small_portal, _modified_after(latest))
    listed = {r["id"] for r in _list_all(small_portal)}
    archived_listing = _list_all(small_portal, archived="true")

    assert (len(modified), len(archived), len(added)) == (3, 2, 4)
    assert all(int(i) > newest for i in added)
    assert set(after) == set(before) - set(archived) | set(added)
    assert listed == set(after)
    assert small_portal.archived_ids() == set(archived)
    assert {r["id"] for r in archived_listing} == set(archived)
    assert all(r["archived"] is True and r["archivedAt"] for r in archived_listing)
    assert {r["id"] for r in changed} == (set(modified) - set(archived)) | set(added)
    stamps = [after[i]["lastmodifieddate"] or "" for i in modified if i in after]
    assert after[again[0]]["lastmodifieddate"] == max(stamps)
    assert all(after[i]["lastmodifieddate"] != before[i]["lastmodifieddate"] for i in modified if i in after)
    with pytest.raises(ValueError, match="archived"):
        small_portal.modify_contacts([archived[0]])


def test_merges_hide_the_merged_contact_and_name_it_on_the_survivor(small_portal: HubSpotServer) -> None:
    portal_before = small_portal.snapshot()
    ids = sorted(portal_before, key=int)
    before = portal_before[ids[0]]
    latest = max(c["lastmodifieddate"] or "" for c in portal_before.values())
    first = requests.post(
        small_portal.base_url + MERGE_PATH,
        headers=AUTH,
        json={"primaryObjectId": ids[1], "objectIdToMerge": ids[2]},
        timeout=10,
    )
    small_portal.merge_contacts(ids[0], ids[1])  # a chain: 2 went into 1, 1 into 0
    again = requests.post(
        small_portal.base_url + MERGE_PATH,
        headers=AUTH,
        json={"primaryObjectId": ids[0], "objectIdToMerge": ids[2]},
        timeout=10,
    )
    after = small_portal.snapshot()
    listed = {r["id"] for r in _list_all(small_portal)}
    archived = {r["id"] for r in _list_all(small_portal, archived="true")}
    read_merged = _get(small_portal, f"{CONTACTS_PATH}/{ids[2]}")
    changed = _search_all(small_portal, _modified_after(latest))

    assert first.status_code == 200 and first.json()["id"] == ids[1]
    assert again.status_code == 400  # no longer a live contact
    assert {ids[1], ids[2]} & (set(after) | listed | archived) == set()
    assert after[ids[0]][MERGED_IDS_PROPERTY] == f"{ids[1]};{ids[2]}"
    assert after[ids[0]]["lastmodifieddate"] != before["lastmodifieddate"]
    assert {r["id"] for r in changed} == {ids[0]}
    assert read_merged.status_code == 200 and read_merged.json()["id"] == ids[0]
    assert small_portal.merged_ids() == {ids[1]: ids[0], ids[2]: ids[1]}


def test_raw_values_type_changes_and_exact_number_search(small_portal: HubSpotServer) -> None:
    ids = sorted(small_portal.snapshot(), key=int)
    small_portal.define_property("renewal_at", "number")
    small_portal.set_properties(ids[:2], {"renewal_at": "12345678901234567", "annualrevenue": "12k"})
    small_portal.set_properties([ids[2]], {"renewal_at": "12345678901234568"})
    # Numbers compare exactly: as doubles these two 17-digit values are equal.
    equal = _search_all(
        small_portal,
        {
            "filterGroups": [
                {"filters": [{"propertyName": "renewal_at", "operator": "EQ", "value": "12345678901234567"}]}
            ]
        },
    )
    small_portal.define_property("renewal_at", "datetime")
    definitions = {p["name"]: p for p in _get(small_portal, PROPERTIES_PATH).json()["results"]}

    assert {r["id"] for r in equal} == set(ids[:2])
    assert small_portal.snapshot()[ids[0]]["annualrevenue"] == "12k"
    assert definitions["renewal_at"]["type"] == "datetime"
    with pytest.raises(KeyError):
        small_portal.set_properties([ids[0]], {"no_such_property": "x"})


def test_fault_injection_and_request_log(small_portal: HubSpotServer) -> None:
    small_portal.inject_fault("error", times=2, path_prefix=CONTACTS_PATH, status=503)
    failures = [_get(small_portal, CONTACTS_PATH).status_code for _ in range(2)]
    properties_ok = _get(small_portal, PROPERTIES_PATH).status_code
    recovered = _get(small_portal, CONTACTS_PATH).status_code
    small_portal.inject_fault("rate_limit", retry_after=2)
    throttled = _get(small_portal, PROPERTIES_PATH)
    small_portal.inject_fault("error", times=5)
    small_portal.clear_faults()
    cleared = _get(small_portal, CONTACTS_PATH).status_code

    assert failures == [503, 503]
    assert properties_ok == recovered == cleared == 200
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "2"
    assert small_portal.request_count(CONTACTS_PATH, status=503) == 2
    assert small_portal.request_count(status=429) == 1
    assert small_portal.request_count() == 6
    small_portal.reset_requests()
    assert small_portal.request_count() == 0


def test_command_line_serves_and_never_prints_the_token() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.hubspot", "--contacts", "10", "--token", TOKEN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        response = requests.get(base_url + CONTACTS_PATH, headers=AUTH, timeout=10)
    finally:
        process.terminate()
        output, errors = process.communicate(timeout=60)

    assert base_url.startswith("http://127.0.0.1:")
    assert response.status_code == 200
    assert TOKEN not in base_url + output + errors
