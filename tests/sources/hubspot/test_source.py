"""The HubSpot source: typed rows, resource hints, and what each resource yields from the sandbox."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from dlt.extract.exceptions import ResourceExtractionError

from sandbox.hubspot import CONTACTS_PATH, PROPERTIES_PATH, SEARCH_PATH
from sources.hubspot import hubspot_source
from sources.hubspot.schema import ContactProperty, column_hints, contact_row, deletion_row, to_epoch_ms
from tests.sources.hubspot.portal import portal, render
from utils.destinations import find_cause
from utils.errors import MalformedPayloadError, PipelineError

CATALOGUE = {
    p.name: p
    for p in (
        ContactProperty.from_definition({"name": "email", "type": "string"}),
        ContactProperty.from_definition({"name": "annualrevenue", "type": "number"}),
        ContactProperty.from_definition({"name": "hs_object_id", "type": "number"}),
        ContactProperty.from_definition({"name": "date_of_birth", "type": "date"}),
        ContactProperty.from_definition({"name": "lastmodifieddate", "type": "datetime"}),
        ContactProperty.from_definition({"name": "hs_email_optout", "type": "bool"}),
        ContactProperty.from_definition({"name": "lifecyclestage", "type": "enumeration"}),
        ContactProperty.from_definition({"name": "hs_geo", "type": "object_coordinates"}),
    )
}


def contact(**properties: Any) -> dict[str, Any]:
    return {"id": "1201", "properties": properties, "archived": False}


def rows_of(resource: Any) -> list[dict[str, Any]]:
    """Iterate a resource as dlt would, surfacing our error from dlt's wrapper."""
    try:
        return list(resource)
    except ResourceExtractionError as exc:
        ours = find_cause(exc, PipelineError)
        raise ours if ours is not None else exc from None


def test_property_types_become_column_types() -> None:
    hints = column_hints(CATALOGUE.values())

    assert {name: hint["data_type"] for name, hint in hints.items()} == {
        "id": "text",
        "archived": "bool",
        "lastmodifieddate": "timestamp",
        "email": "text",
        "annualrevenue": "double",
        "hs_object_id": "bigint",
        "date_of_birth": "date",
        "hs_email_optout": "bool",
        "lifecyclestage": "text",
        "hs_geo": "text",
    }
    assert hints["id"]["primary_key"] is True
    assert hints["archived"]["hard_delete"] is True
    assert hints["lastmodifieddate"]["dedup_sort"] == "desc"


def test_values_are_converted_to_their_types() -> None:
    row = contact_row(
        contact(
            email="zoë@exämple.de",
            annualrevenue="1234.5",
            hs_object_id="1201",
            date_of_birth="1990-02-28",
            lastmodifieddate="2024-05-01T12:00:00.123Z",
            hs_email_optout="true",
            lifecyclestage="customer",
            hs_geo=None,
            unknown_new_property="kept as text",
        ),
        CATALOGUE,
    )

    assert row == {
        "id": "1201",
        "archived": False,
        "email": "zoë@exämple.de",
        "annualrevenue": 1234.5,
        "hs_object_id": 1201,
        "date_of_birth": date(1990, 2, 28),
        "lastmodifieddate": datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC),
        "hs_email_optout": True,
        "lifecyclestage": "customer",
        "hs_geo": None,
        "unknown_new_property": "kept as text",
    }


def test_empty_strings_are_null_and_epoch_milliseconds_are_understood() -> None:
    row = contact_row(
        contact(annualrevenue="", date_of_birth="636163200000", lastmodifieddate="1714564800123"), CATALOGUE
    )
    assert row["annualrevenue"] is None
    assert row["date_of_birth"] == date(1990, 2, 28)
    assert to_epoch_ms(row["lastmodifieddate"]) == 1714564800123


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("annualrevenue", "12k"),
        ("annualrevenue", "nan"),
        ("date_of_birth", "28/02/1990"),
        ("hs_email_optout", "yes"),
    ],
)
def test_a_value_that_does_not_match_its_type_names_the_contact_and_property(name: str, value: str) -> None:
    with pytest.raises(MalformedPayloadError, match=rf"contact 1201 has {name}='{value}'"):
        contact_row(contact(**{name: value, "lastmodifieddate": "1714564800123"}), CATALOGUE)


def test_a_deletion_row_outranks_the_last_update() -> None:
    row = deletion_row(
        {
            "id": "77",
            "properties": {"lastmodifieddate": "2024-05-01T12:00:00.000Z"},
            "archived": True,
            "archivedAt": "2024-05-02T08:00:00.000Z",
        }
    )
    assert row == {"id": "77", "archived": True, "lastmodifieddate": datetime(2024, 5, 2, 8, tzinfo=UTC)}


def test_resources_merge_into_one_contacts_table(monkeypatch: pytest.MonkeyPatch) -> None:
    with portal(monkeypatch, contacts=10):
        source = hubspot_source()
    assert source.section == "hubspot"
    assert set(source.resources) == {"contacts", "archived_contacts"}
    for resource in source.resources.values():
        schema = resource.compute_table_schema()
        assert schema["name"] == "contacts"
        assert resource.write_disposition == "merge"
        assert schema["columns"]["id"]["primary_key"] is True
        assert schema["columns"]["archived"]["hard_delete"] is True


def test_first_extraction_lists_every_contact_with_typed_values(monkeypatch: pytest.MonkeyPatch) -> None:
    with portal(monkeypatch, contacts=400, custom_properties=12) as server:
        rows = rows_of(hubspot_source().contacts)
        snapshot = server.snapshot()
        paths = [r.path for r in server.recorded_requests()]

    assert sorted(r["id"] for r in rows) == sorted(snapshot)
    by_id = {r["id"]: r for r in rows}
    assert all(
        {k: render(v) for k, v in by_id[i].items() if k in snapshot[i]} == snapshot[i] for i in snapshot
    )
    assert isinstance(by_id[next(iter(snapshot))]["createdate"], datetime)
    # The properties, the high-water mark, four list pages, then the catch-up search.
    assert paths == [PROPERTIES_PATH, SEARCH_PATH, *[CONTACTS_PATH] * 4, SEARCH_PATH]


def test_archived_contacts_become_deletion_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    with portal(monkeypatch, contacts=300) as server:
        archived = server.archive_contacts(12)
        rows = rows_of(hubspot_source().archived_contacts)

    assert sorted(r["id"] for r in rows) == sorted(archived)
    assert all(r["archived"] is True and isinstance(r["lastmodifieddate"], datetime) for r in rows)
