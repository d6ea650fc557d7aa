"""The HubSpot source: typed rows, resource hints, and what each resource yields from the sandbox."""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from dlt.extract.exceptions import ResourceExtractionError

from sandbox.hubspot import CONTACTS_PATH, PROPERTIES_PATH, SEARCH_PATH
from sources.hubspot import hubspot_source
from sources.hubspot.schema import (
    ContactColumns,
    ContactProperty,
    column_hints,
    contact_row,
    deletion_row,
    merged_ids,
    to_epoch_ms,
    typed_value,
)
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
        "annualrevenue": "decimal",
        "hs_object_id": "bigint",
        "date_of_birth": "date",
        "hs_email_optout": "bool",
        "lifecyclestage": "text",
        "hs_geo": "text",
    }
    # Numbers are exact decimals, never doubles: NUMBER(38,18) on Snowflake, DECIMAL(38,18) in DuckDB.
    assert (hints["annualrevenue"]["precision"], hints["annualrevenue"]["scale"]) == (38, 18)
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
        "annualrevenue": Decimal("1234.5"),
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
    "text",
    [
        "12345678901234567",  # 17 digits: a double makes it 12345678901234568
        "-98765432109876543",
        "1.3333333333333333",  # HubSpot's own computed values carry 16 decimals
        "0.000000000000000001",  # the 18th decimal
        "99999999999999999999.999999999999999999",  # the largest DECIMAL(38,18) holds
        "1E+3",
    ],
)
def test_numbers_load_exactly(text: str) -> None:
    row = contact_row(contact(annualrevenue=text, lastmodifieddate="1714564800123"), CATALOGUE)
    assert row["annualrevenue"] == Decimal(text)
    assert "annualrevenue__v_text" not in row


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("annualrevenue", "12k"),
        ("annualrevenue", "nan"),
        ("annualrevenue", "123456789012345678901"),  # 21 integer digits: DECIMAL(38,18) holds 20
        ("annualrevenue", "0.1234567890123456789"),  # 19 decimals: DECIMAL(38,18) would round
        ("hs_object_id", "9223372036854775808"),  # past BIGINT
        ("date_of_birth", "28/02/1990"),
        ("date_of_birth", "1990-02-28T10:30:00Z"),  # its date alone would drop the time
        ("date_of_birth", "1990-02-28T00:00:00-05:00"),  # midnight somewhere, not in UTC
        ("date_of_birth", "636171000000"),  # epoch milliseconds at 02:10 UTC
        ("hs_email_optout", "yes"),
    ],
)
def test_a_value_that_does_not_match_its_type_is_kept_as_text_with_a_warning(
    name: str, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    columns = ContactColumns(CATALOGUE.values())
    row = columns.row(contact(**{name: value, "email": "a@example.com", "lastmodifieddate": "1714564800123"}))
    with caplog.at_level(logging.WARNING, logger="sources.hubspot"):
        columns.warn()

    # Never rounded, never blocking: NULL in the typed column, the value as sent beside it.
    assert row[name] is None
    assert row[f"{name}__v_text"] == value
    assert row["email"] == "a@example.com"
    assert columns.hints()[name]["data_type"] == CATALOGUE[name].data_type
    [message] = caplog.messages
    assert f"property {name}" in message and "contact 1201" in message and repr(value) in message
    assert f"contacts.{name}__v_text" in message


@pytest.mark.parametrize(
    ("text", "data_type", "expected"),
    [
        # Mapped as HubSpot itself stores them (documented in the README):
        ("1990-02-28", "timestamp", datetime(1990, 2, 28, tzinfo=UTC)),  # a date alone: midnight UTC
        ("2024-01-31T10:00:00", "timestamp", datetime(2024, 1, 31, 10, tzinfo=UTC)),  # no offset: UTC
        ("2024-01-31T10:00:00+02:00", "timestamp", datetime(2024, 1, 31, 8, tzinfo=UTC)),
        ("2024-01-31T10:00:00.123456000Z", "timestamp", datetime(2024, 1, 31, 10, 0, 0, 123456, tzinfo=UTC)),
        ("1990-02-28T00:00:00Z", "date", date(1990, 2, 28)),
        ("636163200000", "date", date(1990, 2, 28)),  # epoch milliseconds at midnight UTC
        # Refused (the value then loads as text in the variant column), never truncated:
        ("2024-01-31T10:00:00.123456789Z", "timestamp", ValueError),  # nanoseconds: the column keeps micro
        ("1990-02-28T10:30:00Z", "date", ValueError),
    ],
)
def test_datetime_and_date_values_are_mapped_as_documented_or_refused(
    text: str, data_type: str, expected: object
) -> None:
    if expected is ValueError:
        with pytest.raises(ValueError, match=re.escape(text)):
            typed_value(text, data_type)
    else:
        assert typed_value(text, data_type) == expected


def test_an_unusable_cursor_still_stops_the_run_naming_the_contact() -> None:
    # `lastmodifieddate` drives the increment: without it the run cannot move forward safely.
    with pytest.raises(MalformedPayloadError, match=r"contact 1201 has lastmodifieddate='yesterday'"):
        contact_row(contact(lastmodifieddate="yesterday"), CATALOGUE)


def test_a_property_whose_column_has_another_type_loads_into_a_variant_column(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # `renewal_at` was a number when the table was made; HubSpot now calls it a datetime.
    catalogue = [ContactProperty.from_definition({"name": "renewal_at", "type": "datetime"})]
    stored = {"renewal_at": {"name": "renewal_at", "data_type": "decimal", "precision": 38, "scale": 18}}
    columns = ContactColumns(catalogue, stored)  # type: ignore[arg-type]
    row = columns.row(contact(renewal_at="2026-01-31T00:00:00.000Z", lastmodifieddate="1714564800123"))
    with caplog.at_level(logging.WARNING, logger="sources.hubspot"):
        columns.warn()

    assert row["renewal_at__v_timestamp"] == datetime(2026, 1, 31, tzinfo=UTC)
    assert "renewal_at" not in row
    assert columns.hints()["renewal_at__v_timestamp"]["data_type"] == "timestamp"
    assert "renewal_at" not in columns.hints()
    [message] = caplog.messages
    assert "property renewal_at is now timestamp" in message and "contacts.renewal_at__v_timestamp" in message
    assert "prefect deployment run hubspot/full-refresh" in message


def test_a_double_column_from_before_is_not_written_with_decimals() -> None:
    # Tables made before numbers were exact have DOUBLE columns: exact values go beside them.
    stored = {"annualrevenue": {"name": "annualrevenue", "data_type": "double"}}
    columns = ContactColumns(CATALOGUE.values(), stored)  # type: ignore[arg-type]
    row = columns.row(contact(annualrevenue="12345678901234567", lastmodifieddate="1714564800123"))
    assert row["annualrevenue__v_decimal"] == Decimal("12345678901234567")


def test_merged_ids_are_read_from_hs_merged_object_ids() -> None:
    survivor = {"id": "500", "properties": {"hs_merged_object_ids": "101;500; 205;;101;x"}}
    assert merged_ids(survivor) == ["101", "205"]
    assert merged_ids({"id": "500", "properties": {"hs_merged_object_ids": None}}) == []
    assert merged_ids({"id": "500", "properties": {}}) == []


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
        paths = [r.path for r in server.requests]

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
