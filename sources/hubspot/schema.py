"""Contact properties as typed columns: HubSpot's property types to dlt column hints and values.

HubSpot sends every property value as a string (or null): numbers as "1234.5", booleans as
"true", dates as "2024-05-01", datetimes as "2024-05-01T12:00:00.123Z" (some older properties use
epoch milliseconds). The properties endpoint says which type each property has; this module turns
that into column hints and converts each value, so the warehouse gets exact numbers, dates,
timestamps and booleans rather than text.

Where a value goes (`ContactColumns`):

* A property loads into the column of its name, typed from its HubSpot type (numbers as
  DECIMAL(38, 18), never a double, so no digit is lost).
* When that column already exists with another type (the property changed type in HubSpot, e.g.
  `renewal_at` number -> datetime), its values load into `<name>__v_<type>` instead - dlt's own
  naming of variant columns - and a warning names the property and the full refresh that moves
  everything to the new type. Nothing stops: other contacts and properties load as usual.
* A single value that does not parse as its property's type, or a number with more digits than
  DECIMAL(38, 18) holds, loads unchanged as text into `<name>__v_text`, the typed column gets
  NULL for that contact, and a warning names the property, how many values and the first contact.
"""

from __future__ import annotations

import calendar
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from dlt.common.data_types.typing import TDataType
from dlt.common.schema.typing import TColumnSchema

from sources.hubspot.settings import (
    ARCHIVED_COLUMN,
    ID_COLUMN,
    LAST_MODIFIED,
    MERGED_IDS_PROPERTY,
    NUMBER_PRECISION,
    NUMBER_SCALE,
    PROPERTY_DATA_TYPES,
    PROPERTY_TYPE_OVERRIDES,
)
from utils.errors import MalformedPayloadError
from utils.json_numbers import fit_decimal

logger = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_MIDNIGHT_UTC = time(0, tzinfo=UTC)
# The fraction of the seconds in an ISO 8601 time (the only place a datetime has a "." or ",").
_SECONDS_FRACTION = re.compile(r"\d[.,](\d+)")
# What dlt itself puts between a column's name and the type of its variant (`x__v_text`).
VARIANT_INFIX = "__v_"
# A number written plainly that DECIMAL(38, 18) holds as it is: at most 20 digits before the
# point and 18 after.
_PLAIN_DECIMAL = re.compile(
    rf"-?[0-9]{{1,{NUMBER_PRECISION - NUMBER_SCALE}}}(\.[0-9]{{1,{NUMBER_SCALE}}})?", re.ASCII
)
# int64's range (BIGINT).
_BIGINT_MIN, _BIGINT_MAX = -(2**63), 2**63 - 1
# How to reload every contact with the current property types (the remedy a warning names).
FULL_REFRESH_COMMAND = (
    "prefect deployment run hubspot/full-refresh (or, without Prefect, "
    "`uv run python -c 'from pipelines.hubspot import run; run(full_refresh=True)'`)"
)

Row = dict[str, Any]


def variant_column(name: str, data_type: str) -> str:
    """The column for values of `data_type` of a property whose own column has another type."""
    return f"{name}{VARIANT_INFIX}{data_type}"


def type_hint(data_type: TDataType) -> TColumnSchema:
    """The type part of a column hint: decimals carry their precision and scale."""
    hint: TColumnSchema = {"data_type": data_type}
    if data_type == "decimal":
        hint["precision"] = NUMBER_PRECISION
        hint["scale"] = NUMBER_SCALE
    return hint


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
    """Column hints for a new `contacts` table: the id, the deletion flag and one column per property.

    `archived` is dlt's hard-delete column: a row with `archived = true` deletes the contact with
    that id from the table. `lastmodifieddate` orders versions of one contact within a load
    (`dedup_sort`), so the newest wins - including a deletion that is newer than an update.

    Args:
        properties: The portal's contact properties.

    Returns:
        Hints by column name.
    """
    return ContactColumns(properties).hints()


def _fixed_hints() -> dict[str, TColumnSchema]:
    return {
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


def deletion_hints() -> dict[str, TColumnSchema]:
    """The hints of the columns a deletion row carries (a subset of `column_hints`)."""
    return _fixed_hints()


@dataclass(frozen=True, slots=True)
class Placement:
    """Where the values of one property load.

    Attributes:
        name: The property's internal name.
        data_type: The dlt type its values convert to.
        column: The column of its typed values (its name, or a variant when that column has
            another type).
        text_column: The column of values that do not convert (`<name>__v_text`, or `column`
            itself for text properties).
    """

    name: str
    data_type: TDataType
    column: str
    text_column: str


@dataclass(slots=True)
class _Mismatch:
    count: int = 0
    first_contact: str = ""
    first_value: str = ""


@dataclass(slots=True)
class ContactColumns:
    """The column of every property, given the columns the `contacts` table already has.

    Args:
        properties: The portal's contact properties (the catalogue).
        stored: The table's columns as dlt's stored schema has them (empty for a new table).
        normalize: dlt's naming convention (the stored schema's column names are normalised).
    """

    properties: Iterable[ContactProperty]
    stored: Mapping[str, TColumnSchema] = field(default_factory=dict)
    normalize: Callable[[str], str] = str
    placements: dict[str, Placement] = field(init=False, default_factory=dict)
    moved: list[tuple[Placement, str]] = field(init=False, default_factory=list)
    mismatches: dict[str, _Mismatch] = field(init=False, default_factory=dict)
    text_columns: set[str] = field(init=False, default_factory=set)
    hinted: set[str] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        for prop in self.properties:
            if prop.name not in (ID_COLUMN, ARCHIVED_COLUMN):
                self.placements[prop.name] = self._place(prop.name, prop.data_type)

    def _stored_type(self, column: str) -> TColumnSchema | None:
        stored = self.stored.get(self.normalize(column))
        return stored if stored is not None and stored.get("data_type") else None

    def _fits(self, column: str, data_type: TDataType) -> bool:
        stored = self._stored_type(column)
        if stored is None:
            return True
        wanted = type_hint(data_type)
        return all(stored.get(key) == value for key, value in wanted.items())

    def _place(self, name: str, data_type: TDataType) -> Placement:
        if name == LAST_MODIFIED:
            # The cursor: always a timestamp (a value that is not one stops the run, see convert).
            return Placement(name, "timestamp", name, name)
        column = name if self._fits(name, data_type) else variant_column(name, data_type)
        if column != name:
            stored = self._stored_type(name) or {}
            self.moved.append((Placement(name, data_type, column, column), str(stored.get("data_type"))))
        text_column = column if data_type == "text" else variant_column(name, "text")
        if text_column != column and not self._fits(text_column, "text"):
            raise MalformedPayloadError(  # only if someone retyped a `__v_text` column by hand
                f"hubspot: column contacts.{text_column} exists but is not text; run a full refresh: "
                f"{FULL_REFRESH_COMMAND}."
            )
        return Placement(name, data_type, column, text_column)

    def placement(self, name: str) -> Placement:
        """Where property `name` loads; a property missing from the catalogue loads as text."""
        placed = self.placements.get(name)
        if placed is None:
            placed = self.placements[name] = self._place(name, "text")
        return placed

    def hints(self) -> dict[str, TColumnSchema]:
        """Column hints of the fixed columns, every property's typed column and each text column used.

        Text columns are hinted as text although their values are strings anyway: dlt would
        otherwise type a column whose first value looks like an ISO timestamp as a timestamp.
        """
        hints = _fixed_hints()
        for placed in self.placements.values():
            if placed.column not in hints:
                hints[placed.column] = {
                    "name": placed.column,
                    "nullable": True,
                    **type_hint(placed.data_type),
                }
        for column in self.text_columns:
            hints.setdefault(column, {"name": column, "nullable": True, "data_type": "text"})
        return hints

    def new_hints(self) -> dict[str, TColumnSchema]:
        """The hints of `hints()` not returned by an earlier call (for the next batch)."""
        fresh = {name: hint for name, hint in self.hints().items() if name not in self.hinted}
        self.hinted.update(fresh)
        return fresh

    def row(self, contact: Mapping[str, Any]) -> Row:
        """Turn one contact from the API into a row: `id`, `archived` and one value per property.

        A value that does not convert to its property's type goes, as sent, into the property's
        text column, and the typed column gets NULL (see `warn`).

        Args:
            contact: A result from the list or search endpoint (`id`, `properties`, `archived`...).

        Returns:
            The row.

        Raises:
            MalformedPayloadError: The contact has no id, no `properties`, or an unusable
                `lastmodifieddate` (the increment's cursor). The message names the contact.
        """
        contact_id = contact_id_of(contact)
        raw = contact.get("properties")
        if not isinstance(raw, Mapping):
            raise MalformedPayloadError(
                f"hubspot: contact {contact_id} has no `properties` object; nothing was loaded."
            )
        row: Row = {ID_COLUMN: contact_id, ARCHIVED_COLUMN: bool(contact.get("archived", False))}
        placements = self.placements
        for name, value in raw.items():
            if name in (ID_COLUMN, ARCHIVED_COLUMN):
                continue
            if value is None:
                # Many values are null: no conversion, only the column (typed by the hints).
                row[(placements.get(name) or self.placement(name)).column] = None
                continue
            if name == LAST_MODIFIED:
                row[name] = convert(value, "timestamp", contact_id, name)
                continue
            placed = placements.get(name) or self.placement(name)
            if placed.data_type == "text":
                row[placed.column] = value if isinstance(value, str) else str(value)
                continue
            try:
                row[placed.column] = typed_value(value, placed.data_type)
            except (ValueError, ArithmeticError):
                row[placed.column] = None
                row[placed.text_column] = value if isinstance(value, str) else str(value)
                self.text_columns.add(placed.text_column)
                self._note_mismatch(name, contact_id, str(value))
        if row.get(LAST_MODIFIED) is None:
            # Always returned by HubSpot; without it the increment cannot move forward.
            row[LAST_MODIFIED] = convert(contact.get("updatedAt"), "timestamp", contact_id, "updatedAt")
        return row

    def _note_mismatch(self, name: str, contact_id: str, value: str) -> None:
        mismatch = self.mismatches.setdefault(name, _Mismatch())
        if mismatch.count == 0:
            mismatch.first_contact, mismatch.first_value = contact_id, value[:60]
        mismatch.count += 1

    def warnings(self) -> list[str]:
        """One message per property that changed type or had values that did not convert."""
        messages = [
            f"hubspot: property {placed.name} is now {placed.data_type} but column "
            f"contacts.{placed.name} is {was}: its values load into contacts.{placed.column} and "
            f"contacts.{placed.name} keeps what earlier runs loaded. To reload every contact with "
            f"the new type, run {FULL_REFRESH_COMMAND}."
            for placed, was in self.moved
        ]
        for name, mismatch in self.mismatches.items():
            placed = self.placement(name)
            messages.append(
                f"hubspot: {mismatch.count} value(s) of property {name} are not a valid "
                f"{placed.data_type} (or have more digits than DECIMAL({NUMBER_PRECISION},"
                f"{NUMBER_SCALE}) holds), e.g. contact {mismatch.first_contact} has "
                f"{mismatch.first_value!r}: kept unchanged as text in contacts.{placed.text_column}, "
                f"NULL in contacts.{placed.column}."
            )
        return messages

    def warn(self) -> None:
        """Log `warnings()` (once each per run)."""
        for message in self.warnings():
            logger.warning("%s", message)
        self.mismatches.clear()
        self.moved.clear()


def contact_row(contact: Mapping[str, Any], properties: Mapping[str, ContactProperty]) -> Row:
    """Turn one contact into a row for a new table (see `ContactColumns.row`).

    Args:
        contact: A result from the list or search endpoint.
        properties: The property catalogue by name; unknown properties load as text.

    Returns:
        The row.
    """
    return ContactColumns(properties.values()).row(contact)


def merged_ids(contact: Mapping[str, Any]) -> list[str]:
    """Ids of the contacts merged into this one (`hs_merged_object_ids`), its own id left out.

    HubSpot lists a merged-away contact neither as live nor as archived; the survivor names it
    in this semicolon-separated property. When a merge gives the survivor a new id, the old id
    of the primary is listed too, so it is removed as well.
    """
    raw = contact.get("properties")
    value = raw.get(MERGED_IDS_PROPERTY) if isinstance(raw, Mapping) else None
    if not isinstance(value, str | int) or isinstance(value, bool):
        return []
    own = contact_id_of(contact)
    ids = (part.strip() for part in str(value).split(";"))
    return [i for i in dict.fromkeys(ids) if i.isdigit() and i != own]


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
    """Convert a value the run cannot do without (the cursor, `archivedAt`) or fail naming it.

    Args:
        value: The value as sent (a string, or null).
        data_type: The dlt data type of the column.
        contact_id: For the error message.
        name: The property name, for the error message.

    Returns:
        As `typed_value`.

    Raises:
        MalformedPayloadError: The value does not parse as its type.
    """
    try:
        return typed_value(value, data_type)
    except (ValueError, ArithmeticError):
        raise MalformedPayloadError(
            f"hubspot: contact {contact_id} has {name}={str(value).strip()[:60]!r}, which is not a "
            f"valid {data_type} as the property's type says; nothing was loaded."
        ) from None


def typed_value(value: Any, data_type: str) -> Any:
    """Convert one HubSpot property value to the Python value of its column type, exactly.

    Args:
        value: The value as sent (a string, or null).
        data_type: The dlt data type of the column.

    Returns:
        None for null or empty values, else a `Decimal` (exact, within DECIMAL(38, 18)), `int`
        (within BIGINT), `date`, `datetime` (UTC), `bool` or the string itself.

    Raises:
        ValueError: The value does not parse as its type, or does not fit it without rounding.
    """
    if value is None:
        return None
    if data_type == "text":
        return value if isinstance(value, str) else str(value)
    text = str(value).strip()
    if text == "":
        return None
    if data_type == "decimal":
        return parse_decimal(text)
    if data_type == "bigint":
        number = int(text)
        if not _BIGINT_MIN <= number <= _BIGINT_MAX:
            raise ValueError(text)
        return number
    if data_type == "timestamp":
        return parse_datetime(text)
    if data_type == "date":
        return parse_date(text)
    if data_type == "bool":
        return parse_bool(text)
    return value


def parse_decimal(text: str) -> Decimal:
    """Parse a HubSpot number into a `Decimal` that DECIMAL(38, 18) holds exactly.

    Only the digits are looked at (no `Decimal` arithmetic, which rounds to 28 digits).

    Raises:
        ValueError: Not a finite number, or more than 20 integer or 18 fractional digits
            (rounding it would change it).
    """
    if _PLAIN_DECIMAL.fullmatch(text):  # the common case, decided by the regular expression alone
        return Decimal(text)
    return fit_decimal(text, NUMBER_PRECISION, NUMBER_SCALE)


def parse_datetime(text: str) -> datetime:
    """Parse an ISO 8601 datetime or epoch milliseconds into an aware UTC datetime.

    A value without an offset is UTC (HubSpot stores and sends datetimes in UTC); a date alone is
    midnight UTC, as HubSpot stores dates.

    Raises:
        ValueError: Not a datetime, or finer than a microsecond (the timestamp column would drop
            the extra digits; `fromisoformat` silently does).
    """
    if text.lstrip("-").isdigit():
        return EPOCH + int(text) * _MILLISECOND
    fraction = _SECONDS_FRACTION.search(text)
    if fraction is not None and fraction.group(1)[6:].strip("0"):
        raise ValueError(text)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_date(text: str) -> date:
    """Parse `YYYY-MM-DD` (or a datetime, or epoch milliseconds, at midnight UTC) into a date.

    Raises:
        ValueError: Not a date, or a datetime with a time of day other than midnight UTC: taking its
            date would drop the time without a word (the value then loads as sent, as text).
    """
    if text.lstrip("-").isdigit() or len(text) > 10:
        moment = parse_datetime(text)
        if moment.timetz() != _MIDNIGHT_UTC:
            raise ValueError(text)
        return moment.date()
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
