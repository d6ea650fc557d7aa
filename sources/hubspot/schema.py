"""Contact properties as typed columns: HubSpot's property types to dlt column hints and values.

HubSpot sends every property value as a string (or null): numbers as "1234.5", booleans as
"true", dates as "2024-05-01", datetimes as "2024-05-01T12:00:00.123Z" (some older properties use
epoch milliseconds). The properties endpoint says which type each property has; this module turns
that into column hints and converts each value, so the warehouse gets numbers, dates, timestamps
and booleans rather than text.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dlt.common.data_types.typing import TDataType
from dlt.common.schema.typing import TColumnSchema

from sources.hubspot.settings import (
    ARCHIVED_COLUMN,
    ID_COLUMN,
    LAST_MODIFIED,
    PROPERTY_DATA_TYPES,
    PROPERTY_TYPE_OVERRIDES,
)
from utils.errors import MalformedPayloadError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ContactProperty:
    """One contact property: its internal name, HubSpot type and the column type it loads as.

    Attributes:
        name: Internal name (`properties=` and the column name).
        hubspot_type: HubSpot's `type` (string, number, date, datetime, enumeration, bool...).
        data_type: The dlt data type of its column.
    """

    name: str
    hubspot_type: str
    data_type: TDataType

    @classmethod
    def from_definition(cls, definition: Mapping[str, Any]) -> ContactProperty:
        """Build from one entry of `GET /crm/v3/properties/contacts`.

        Raises:
            MalformedPayloadError: The entry has no name.
        """
        name = definition.get("name")
        if not isinstance(name, str) or not name:
            raise MalformedPayloadError(
                f"hubspot: a contact property definition has no name ({str(definition)[:200]}); "
                "nothing was loaded."
            )
        hubspot_type = str(definition.get("type") or "string")
        data_type = PROPERTY_TYPE_OVERRIDES.get(name) or PROPERTY_DATA_TYPES.get(hubspot_type, "text")
        return cls(name=name, hubspot_type=hubspot_type, data_type=data_type)  # type: ignore[arg-type]


def column_hints(properties: Iterable[ContactProperty]) -> dict[str, TColumnSchema]:
    """Column hints for the `contacts` table: the id, the deletion flag and one column per property.

    `archived` is dlt's hard-delete column: a row with `archived = true` deletes the contact with
    that id from the table. `lastmodifieddate` orders versions of one contact within a load
    (`dedup_sort`), so the newest wins - including a deletion that is newer than an update.

    Args:
        properties: The portal's contact properties.

    Returns:
        Hints by column name.
    """
    hints: dict[str, TColumnSchema] = {
        ID_COLUMN: {"name": ID_COLUMN, "data_type": "text", "nullable": False, "primary_key": True},
        ARCHIVED_COLUMN: {
            "name": ARCHIVED_COLUMN,
            "data_type": "bool",
            "nullable": True,
            "hard_delete": True,
        },
        LAST_MODIFIED: {
            "name": LAST_MODIFIED,
            "data_type": "timestamp",
            "nullable": True,
            "dedup_sort": "desc",
        },
    }
    for prop in properties:
        if prop.name in hints:
            continue
        hints[prop.name] = {"name": prop.name, "data_type": prop.data_type, "nullable": True}
    return hints


def deletion_hints() -> dict[str, TColumnSchema]:
    """The hints of the columns a deletion row carries (a subset of `column_hints`)."""
    return column_hints(())


def contact_row(contact: Mapping[str, Any], properties: Mapping[str, ContactProperty]) -> Row:
    """Turn one contact from the API into a row: `id`, `archived` and one typed value per property.

    Args:
        contact: A result from the list or search endpoint (`id`, `properties`, `archived`...).
        properties: The property catalogue by name; unknown properties load as text.

    Returns:
        The row.

    Raises:
        MalformedPayloadError: The contact has no id, or a value does not match its property's
            type. The message names the contact and the property.
    """
    contact_id = contact_id_of(contact)
    raw = contact.get("properties")
    if not isinstance(raw, Mapping):
        raise MalformedPayloadError(
            f"hubspot: contact {contact_id} has no `properties` object; nothing was loaded."
        )
    row: Row = {ID_COLUMN: contact_id, ARCHIVED_COLUMN: bool(contact.get("archived", False))}
    for name, value in raw.items():
        prop = properties.get(name)
        row[name] = convert(value, prop.data_type if prop else "text", contact_id, name)
    if row.get(LAST_MODIFIED) is None:
        # Always returned by HubSpot; without it the increment cannot move forward.
        row[LAST_MODIFIED] = convert(contact.get("updatedAt"), "timestamp", contact_id, "updatedAt")
    return row


def deletion_row(contact: Mapping[str, Any]) -> Row:
    """A row that deletes an archived contact: its id, `archived = true` and when it changed.

    `lastmodifieddate` is the later of the contact's last modification and `archivedAt`, so the
    deletion outranks any earlier version of the contact loaded in the same run.

    Args:
        contact: A result from the `archived=true` listing.

    Returns:
        The row.
    """
    contact_id = contact_id_of(contact)
    raw = contact.get("properties")
    props = raw if isinstance(raw, Mapping) else {}
    stamps = [
        convert(value, "timestamp", contact_id, name)
        for name, value in (
            (LAST_MODIFIED, props.get(LAST_MODIFIED)),
            ("updatedAt", contact.get("updatedAt")),
            ("archivedAt", contact.get("archivedAt")),
        )
        if value not in (None, "")
    ]
    return {ID_COLUMN: contact_id, ARCHIVED_COLUMN: True, LAST_MODIFIED: max(stamps) if stamps else None}


def contact_id_of(contact: Mapping[str, Any]) -> str:
    """The contact's id as a string of digits.

    Raises:
        MalformedPayloadError: The contact has no usable id.
    """
    contact_id = contact.get("id")
    if isinstance(contact_id, int) and not isinstance(contact_id, bool):
        return str(contact_id)
    if not isinstance(contact_id, str) or not contact_id.strip():
        raise MalformedPayloadError(
            f"hubspot: a contact without an id was returned ({str(contact)[:200]}); nothing was loaded."
        )
    return contact_id.strip()


def last_modified_ms(contact: Mapping[str, Any]) -> int:
    """The contact's `lastmodifieddate` in epoch milliseconds (what search filters compare).

    Raises:
        MalformedPayloadError: It is missing or not a datetime.
    """
    contact_id = contact_id_of(contact)
    raw = contact.get("properties")
    value = raw.get(LAST_MODIFIED) if isinstance(raw, Mapping) else None
    if value in (None, ""):
        value = contact.get("updatedAt")
    parsed = convert(value, "timestamp", contact_id, LAST_MODIFIED)
    if parsed is None:
        raise MalformedPayloadError(
            f"hubspot: contact {contact_id} has no `{LAST_MODIFIED}`; nothing was loaded."
        )
    return to_epoch_ms(parsed)


def convert(value: Any, data_type: str, contact_id: str, name: str) -> Any:
    """Convert one HubSpot property value to the Python value of its column type.

    Args:
        value: The value as sent (a string, or null).
        data_type: The dlt data type of the column.
        contact_id: For the error message.
        name: The property name, for the error message.

    Returns:
        None for null or empty values, else a `float`, `int`, `date`, `datetime` (UTC), `bool`
        or the string itself.

    Raises:
        MalformedPayloadError: The value does not parse as its type.
    """
    if value is None:
        return None
    text = str(value).strip()
    if data_type == "text":
        return value if isinstance(value, str) else str(value)
    if text == "":
        return None
    try:
        if data_type == "double":
            number = float(text)
            if not math.isfinite(number):
                raise ValueError(text)
            return number
        if data_type == "bigint":
            return int(text)
        if data_type == "timestamp":
            return parse_datetime(text)
        if data_type == "date":
            return parse_date(text)
        if data_type == "bool":
            return parse_bool(text)
    except (ValueError, OverflowError):
        raise MalformedPayloadError(
            f"hubspot: contact {contact_id} has {name}={text[:60]!r}, which is not a valid "
            f"{data_type} as the property's type says; nothing was loaded."
        ) from None
    return value


def parse_datetime(text: str) -> datetime:
    """Parse an ISO 8601 datetime or epoch milliseconds into an aware UTC datetime."""
    if text.lstrip("-").isdigit():
        return EPOCH + int(text) * _MILLISECOND
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_date(text: str) -> date:
    """Parse `YYYY-MM-DD` (or a datetime, or epoch milliseconds at midnight UTC) into a date."""
    if text.lstrip("-").isdigit():
        return (EPOCH + int(text) * _MILLISECOND).date()
    if len(text) > 10:
        return parse_datetime(text).date()
    return date.fromisoformat(text)


def parse_bool(text: str) -> bool:
    """Parse HubSpot's "true" / "false"."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise ValueError(text)


def to_epoch_ms(moment: datetime) -> int:
    """An aware datetime as whole epoch milliseconds (HubSpot's resolution)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Integer arithmetic (not `timestamp()`, a float) and no datetime subtraction, which pendulum's
    # DateTime (dlt's cursor values) turns into its own interval type.
    return calendar.timegm(moment.utctimetuple()) * 1000 + moment.microsecond // 1000
