"""HubSpot CRM v3 stand-in: contacts, contact properties and contact search on loopback.

`HubSpotServer` serves the part of HubSpot's CRM v3 contract that a contacts pipeline uses:

- `GET /crm/v3/objects/contacts` - list contacts (`limit`, `after`, `properties`, `archived`).
- `GET /crm/v3/objects/contacts/{id}` - read one contact.
- `POST /crm/v3/objects/contacts/search` - search with `filterGroups`, `sorts`, `query`,
  `properties`, `limit` and `after`.
- `GET /crm/v3/properties/contacts` - every contact property, custom ones included.
- `POST /crm/v3/objects/contacts/merge` - merge `objectIdToMerge` into `primaryObjectId`.

Contract details the sandbox reproduces (from HubSpot's developer docs and usage guidelines):

- Private app auth: `Authorization: Bearer <token>`; anything else is a 401 with HubSpot's error
  body (`category: INVALID_AUTHENTICATION`).
- Every property value is a string or null: numbers as "42" / "1234.5", booleans as
  "true" / "false", dates as "YYYY-MM-DD", datetimes as ISO 8601 in UTC with milliseconds and "Z".
  Multi-select (checkbox) enumerations join their values with ";".
- List pages hold at most 100 contacts: a larger `limit` is quietly capped at 100. The cursor
  (`paging.next.after`) is the next contact id, so a page is stable while contacts change;
  the last page has no `paging` key.
- Search pages hold at most 200 results (more is a 400), and a query can page through at most
  the first 10,000 results: a request whose `after` + `limit` goes past 10,000 is a 400
  `VALIDATION_ERROR`, even though the page before it still offers `paging.next.after`.
  HubSpot's docs only say "a 400 error"; the message here is the sandbox's own wording.
- Rate limits per token: a rolling window of `rate_limit` requests per `window_seconds` for all
  non-search endpoints, reported on each of their responses through `X-HubSpot-RateLimit-Max`,
  `-Remaining`, `-Interval-Milliseconds`, `-Daily` and `-Daily-Remaining`; over the limit is a 429
  with `Retry-After` (whole seconds) and a `TEN_SECONDLY_ROLLING` body. Search has its own limit
  of `search_rate_per_second` requests per second, and its responses carry none of those headers
  (HubSpot says so); a search 429 carries no `Retry-After` either, so clients must pace search
  themselves.
- Merges: the merged-away contact is listed neither as live nor as archived from then on; the
  survivor keeps its id, gains the loser's id (and the ids merged into the loser) in
  `hs_merged_object_ids` (";"-separated), fills its empty properties from the loser, and its
  `lastmodifieddate` moves to the merge. Reading the merged-away id answers with the survivor.
- Number properties hold what HubSpot portals hold: besides small values, 17-digit integers and
  fractions with 16 decimals, which a double cannot hold exactly.
- Over-long URLs: a request line (method, target and HTTP version) longer than
  `max_request_line` bytes (8,192 by default, a common proxy limit) gets a 414 URI Too Long with
  an HTML body, before authentication, as an edge proxy would answer. Asking for every property
  of a portal with a few hundred custom properties goes past it, so clients must batch
  properties.

Data is deterministic for a given seed: contacts with unicode names, emails, phones, companies,
lifecycle stages, numeric, date, datetime, boolean and enumeration custom properties, and many
nulls. Initial timestamps lie in the three years before 2025-06-01 and include groups of contacts
sharing one `lastmodifieddate` (bulk imports). Mutations (`modify_contacts`, `archive_contacts`,
`add_contacts`) stamp each call's contacts with one shared timestamp that is "now" and strictly
greater than any earlier one; `set_properties` writes given raw values (a value that does not
match the property's type included) and `define_property` adds a property or changes a type.
Fault injection, a request log and `snapshot()` let tests check a
client's behaviour and the data it loaded.

Run `python -m sandbox.hubspot --contacts 5000 --token <token>` to serve until Ctrl-C.
"""

from __future__ import annotations

import argparse
import bisect
import functools
import hmac
import json
import math
import random
import threading
import time
import unicodedata
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs, urlencode

from werkzeug.wrappers import Request, Response

from sandbox.base import Fault, HttpStandIn, RecordedRequest, serve_until_signalled

__all__ = [
    "CONTACTS_PATH",
    "DEFAULT_MAX_REQUEST_LINE",
    "MERGED_IDS_PROPERTY",
    "MERGE_PATH",
    "PROPERTIES_PATH",
    "SEARCH_PATH",
    "SEARCH_RESULT_CAP",
    "HubSpotServer",
    "PropertyDefinition",
    "RecordedRequest",
    "main",
]

CONTACTS_PATH = "/crm/v3/objects/contacts"
SEARCH_PATH = "/crm/v3/objects/contacts/search"
PROPERTIES_PATH = "/crm/v3/properties/contacts"

MERGE_PATH = "/crm/v3/objects/contacts/merge"
MERGED_IDS_PROPERTY = "hs_merged_object_ids"

MAX_LIST_LIMIT = 100
DEFAULT_LIST_LIMIT = 10
MAX_SEARCH_LIMIT = 200
DEFAULT_SEARCH_LIMIT = 10
SEARCH_RESULT_CAP = 10_000
MAX_FILTER_GROUPS = 5
MAX_FILTERS_PER_GROUP = 10
MAX_FILTERS_TOTAL = 25
DEFAULT_MAX_REQUEST_LINE = 8_192
DEFAULT_DAILY_LIMIT = 500_000

# Properties HubSpot returns when a request names none, and those it always adds.
DEFAULT_PROPERTIES = ("firstname", "lastname", "email", "createdate", "lastmodifieddate", "hs_object_id")
ALWAYS_RETURNED = ("createdate", "lastmodifieddate", "hs_object_id")
CORE_PROPERTIES = frozenset(ALWAYS_RETURNED)

# Initial data lies before this fixed instant so a seed always gives the same contacts, and every
# later mutation (stamped with the wall clock) is newer than all of them.
_DATA_END_MS = 1_748_736_000_000  # 2025-06-01T00:00:00Z
_DATA_SPAN_MS = 3 * 365 * 86_400_000
_PROPERTIES_CREATED = "2019-08-06T02:43:14.491Z"

_AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)

Json = dict[str, Any]


# --------------------------------------------------------------------------------------------
# Property catalogue and value generation
# --------------------------------------------------------------------------------------------

_FIELD_TYPES = {
    "string": "text",
    "number": "number",
    "date": "date",
    "datetime": "date",
    "enumeration": "select",
    "bool": "booleancheckbox",
}


@dataclass(frozen=True, slots=True)
class PropertyDefinition:
    """One contact property as `GET /crm/v3/properties/contacts` describes it.

    Attributes:
        name: Internal name, used in `properties=` and search filters.
        label: Display label.
        type: HubSpot data type: string, number, date, datetime, enumeration or bool.
        field_type: HubSpot form field type (text, number, date, select, checkbox, ...).
        group_name: Property group.
        hubspot_defined: True for HubSpot's own properties, False for custom ones.
        options: Allowed values of an enumeration.
        read_only: True when HubSpot computes the value (createdate, hs_object_id, ...).
    """

    name: str
    label: str
    type: str
    field_type: str
    group_name: str
    hubspot_defined: bool
    options: tuple[str, ...] = ()
    read_only: bool = False

    def to_json(self, display_order: int) -> Json:
        """Render the property the way HubSpot's properties endpoint does.

        Args:
            display_order: Position of the property in its listing.

        Returns:
            The property object.
        """
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "description": "",
            "groupName": self.group_name,
            "options": [
                {
                    "label": option.replace("_", " ").title(),
                    "value": option,
                    "displayOrder": i,
                    "hidden": False,
                }
                for i, option in enumerate(self.options)
            ],
            "displayOrder": display_order,
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": self.name == "hs_object_id",
            "hidden": False,
            "hubspotDefined": self.hubspot_defined,
            "modificationMetadata": {
                "archivable": not self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only,
            },
            "formField": not self.read_only,
            "createdAt": _PROPERTIES_CREATED,
            "updatedAt": _PROPERTIES_CREATED,
            "archived": False,
        }


def _standard(
    name: str, label: str, type_: str, *, options: tuple[str, ...] = (), read_only: bool = False
) -> PropertyDefinition:
    return PropertyDefinition(
        name=name,
        label=label,
        type=type_,
        field_type=_FIELD_TYPES[type_],
        group_name="contactinformation",
        hubspot_defined=True,
        options=options,
        read_only=read_only,
    )


LIFECYCLE_STAGES = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)
LEAD_STATUSES = (
    "NEW",
    "OPEN",
    "IN_PROGRESS",
    "OPEN_DEAL",
    "UNQUALIFIED",
    "ATTEMPTED_TO_CONTACT",
    "CONNECTED",
    "BAD_TIMING",
)
STANDARD_PROPERTIES: tuple[PropertyDefinition, ...] = (
    _standard("firstname", "First Name", "string"),
    _standard("lastname", "Last Name", "string"),
    _standard("email", "Email", "string"),
    _standard("phone", "Phone Number", "string"),
    _standard("mobilephone", "Mobile Phone Number", "string"),
    _standard("company", "Company Name", "string"),
    _standard("jobtitle", "Job Title", "string"),
    _standard("website", "Website URL", "string"),
    _standard("address", "Street Address", "string"),
    _standard("city", "City", "string"),
    _standard("country", "Country/Region", "string"),
    _standard("zip", "Postal Code", "string"),
    _standard("message", "Message", "string"),
    _standard("lifecyclestage", "Lifecycle Stage", "enumeration", options=LIFECYCLE_STAGES),
    _standard("hs_lead_status", "Lead Status", "enumeration", options=LEAD_STATUSES),
    _standard("date_of_birth", "Date of birth", "date"),
    _standard("hs_email_optout", "Unsubscribed from all email", "bool", options=("true", "false")),
    _standard("num_notes", "Number of Sales Activities", "number", read_only=True),
    _standard("hubspotscore", "HubSpot Score", "number", read_only=True),
    _standard("annualrevenue", "Annual Revenue", "number"),
    _standard("notes_last_updated", "Last Activity Date", "datetime", read_only=True),
    _standard("createdate", "Create Date", "datetime", read_only=True),
    _standard("lastmodifieddate", "Last Modified Date", "datetime", read_only=True),
    _standard("hs_object_id", "Record ID", "number", read_only=True),
    _standard(MERGED_IDS_PROPERTY, "Merged Contact IDs", "enumeration", read_only=True),
)

_CUSTOM_TYPES = ("string", "number", "date", "datetime", "enumeration", "bool")
_CUSTOM_OPTIONS = ("alpha", "beta", "gamma", "delta", "epsilon")


def custom_property_definitions(count: int) -> tuple[PropertyDefinition, ...]:
    """Build the deterministic custom properties of a sandbox portal.

    Names are deliberately long (about 50 characters) so a few hundred of them no longer fit in
    one URL. Types cycle through string, number, date, datetime, enumeration and bool; every
    other enumeration is a multi-select checkbox whose values are joined with ";".

    Args:
        count: How many custom properties to define.

    Returns:
        The property definitions, in display order.
    """
    definitions = []
    for i in range(count):
        type_ = _CUSTOM_TYPES[i % len(_CUSTOM_TYPES)]
        field_type = _FIELD_TYPES[type_]
        if type_ == "enumeration" and (i // len(_CUSTOM_TYPES)) % 2 == 1:
            field_type = "checkbox"
        options = _CUSTOM_OPTIONS if type_ == "enumeration" else ("true", "false") if type_ == "bool" else ()
        definitions.append(
            PropertyDefinition(
                name=f"sandbox_{type_}_property_with_a_long_internal_name_{i:03d}",
                label=f"Sandbox {type_} property {i}",
                type=type_,
                field_type=field_type,
                group_name="sandbox_custom_properties",
                hubspot_defined=False,
                options=options,
            )
        )
    return tuple(definitions)


FIRST_NAMES = (
    "Zoë", "Łukasz", "José", "François", "Søren", "Björn", "Siobhán", "Ólafur", "花子", "太郎",
    "Дмитрий", "Αλέξανδρος", "محمد", "Anne-Marie", "D'Angelo", "Chloé", "Mårten", "Ngozi",
    "Priya", "Emma", "Liam", "Olivia", "Jürgen", "İlkay", "Nguyễn Văn", "Emily",
)  # fmt: skip
LAST_NAMES = (
    "Ñúñez", "佐藤", "鈴木", "Müller", "O'Brien", "Kowalski", "Wiśniewska", "García Márquez",
    "Smith, Jr.", "van der Berg", "Øster", "Popescu", "Иванова", "Okafor", "Patel", "Jones",
    "Dubois", "Schröder", "Kim", "Lê", "Łęcka", "Hernández",
)  # fmt: skip
COMPANIES = (
    "Müller GmbH", "株式会社テスト", "Acme, Inc.", "Ñandú Logística S.A.", "Globex", "Initech",
    "Société Générale d'Exemple", "Łódź Software sp. z o.o.", "Umbrella \"Corp\"", "Østfold AS",
)  # fmt: skip
JOB_TITLES = (
    "CEO", "Head of Data", "Analytics Engineer", "Directeur général", "Geschäftsführerin",
    "VP Sales & Marketing", "営業部長", "Office Manager", "Data Engineer", "CFO",
)  # fmt: skip
CITIES = ("São Paulo", "Zürich", "Kraków", "東京", "Reykjavík", "London", "Montréal", "Köln", "Lagos")
COUNTRIES = ("Brazil", "Switzerland", "Poland", "Japan", "Iceland", "United Kingdom", "Canada", "Germany")
DOMAINS = ("example.com", "example.org", "example.net", "mail.example.co.uk", "exämple.de")
MESSAGES = (
    'Please call me back, "urgently".',
    "Line one\nLine two, with a comma",
    "Ünïcödé text with emoji 🚀 and tabs\tinside",
    "Semicolons; pipes | and backslashes \\ too",
)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_MS = 86_400_000


@functools.lru_cache(maxsize=8192)
def _day_text(day: int) -> str:
    return f"{_EPOCH + timedelta(days=day):%Y-%m-%d}"


def _iso_ms(ms: int) -> str:
    """Format epoch milliseconds as HubSpot's datetime string, e.g. `2024-05-01T12:00:00.123Z`."""
    # Arithmetic plus a cached day string: datetime formatting dominated page rendering.
    day, rest = divmod(ms, _DAY_MS)
    seconds, millis = divmod(rest, 1000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{_day_text(day)}T{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}Z"


def _iso_date(ms: int) -> str:
    return _day_text(ms // _DAY_MS)


def _number(value: float) -> str:
    """Format a number the way HubSpot stores it: no exponent, no trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


@functools.lru_cache(maxsize=1024)
def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in ascii_text.lower() if ch.isalnum())


_PHONE_FORMATS = ("+44 20 7946 {:04d}", "(555) 010-{:04d}", "+81-3-5555-{:04d}", "+49 30 {:07d}", "555{:07d}")
_CUSTOM_STRINGS = (*FIRST_NAMES, *COMPANIES, *MESSAGES, "", "plain ascii value")


class _Draw:
    """Deterministic draws from one seeded stream, using only `random()` because it is fast."""

    __slots__ = ("random",)

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed).random

    def below(self, n: int) -> int:
        return int(self.random() * n)

    def pick(self, seq: Sequence[str]) -> str:
        return seq[int(self.random() * len(seq))]

    def maybe(self, probability_null: float, value: str) -> str | None:
        return None if self.random() < probability_null else value

    def instant(self) -> int:
        return _DATA_END_MS - int(self.random() * _DATA_SPAN_MS)

    def phone(self) -> str:
        index = self.below(len(_PHONE_FORMATS))
        return _PHONE_FORMATS[index].format(self.below(10_000 if index < 3 else 10_000_000))


def _custom_value(draw: _Draw, definition: PropertyDefinition) -> str | None:
    if draw.random() < 0.3:
        return None
    type_ = definition.type
    if type_ == "string":
        return draw.pick(_CUSTOM_STRINGS)
    if type_ == "number":
        kind = draw.random()
        if kind < 0.45:
            return str(draw.below(100_050) - 50)
        if kind < 0.55:
            # 17 significant digits: more than a double holds (HubSpot portals have such ids).
            return str(10**16 + draw.below(10**8) * 10**8 + draw.below(10**8))
        if kind < 0.6:
            # 16 decimals, as HubSpot's own computed values (e.g. "1.3333333333333333") have.
            fraction = f"{draw.below(10**8):08d}{draw.below(10**8):08d}".rstrip("0") or "5"
            return f"{draw.below(100)}.{fraction}"
        return _number(draw.random() * 1_001_000 - 1_000)
    if type_ == "date":
        return _iso_date(draw.instant())
    if type_ == "datetime":
        return _iso_ms(draw.instant())
    if type_ == "bool":
        return "true" if draw.random() < 0.5 else "false"
    if definition.field_type == "checkbox":
        # A non-empty subset of the options, in option order, joined as HubSpot joins them.
        mask = 1 + draw.below((1 << len(definition.options)) - 1)
        return ";".join(o for i, o in enumerate(definition.options) if mask >> i & 1)
    return draw.pick(definition.options)


def _generate_properties(
    seed: int, number: int, custom: Sequence[PropertyDefinition]
) -> dict[str, str | None]:
    """Generate the non-core property values of contact number `number` (deterministic)."""
    draw = _Draw(seed * 1_000_003 + number)
    first = draw.pick(FIRST_NAMES)
    last = draw.pick(LAST_NAMES)
    local = ".".join(part for part in (_slug(first), _slug(last)) if part) or "contact"
    email = f"{local}{number}@{draw.pick(DOMAINS)}"
    if draw.random() < 0.03:
        email = email.upper()
    maybe = draw.maybe
    values: dict[str, str | None] = {
        "firstname": maybe(0.05, first),
        "lastname": maybe(0.08, last),
        "email": maybe(0.08, email),
        "phone": maybe(0.35, draw.phone()),
        "mobilephone": maybe(0.7, draw.phone()),
        "company": maybe(0.25, draw.pick(COMPANIES)),
        "jobtitle": maybe(0.3, draw.pick(JOB_TITLES)),
        "website": maybe(0.5, f"https://www.{draw.pick(DOMAINS)}/{_slug(last) or 'x'}"),
        "address": maybe(0.5, f"{1 + draw.below(300)} {draw.pick(LAST_NAMES)} Street"),
        "city": maybe(0.3, draw.pick(CITIES)),
        "country": maybe(0.3, draw.pick(COUNTRIES)),
        # Postal codes keep their leading zeros: they are strings, not numbers.
        "zip": maybe(0.4, f"{draw.below(100_000):05d}"),
        "message": maybe(0.7, draw.pick(MESSAGES)),
        "lifecyclestage": maybe(0.1, draw.pick(LIFECYCLE_STAGES)),
        "hs_lead_status": maybe(0.5, draw.pick(LEAD_STATUSES)),
        "date_of_birth": maybe(0.6, _iso_date(draw.instant() - 30 * 365 * _DAY_MS)),
        "hs_email_optout": maybe(0.2, "true" if draw.random() < 0.2 else "false"),
        "num_notes": maybe(0.3, str(draw.below(41))),
        "hubspotscore": maybe(0.4, str(draw.below(101))),
        "annualrevenue": maybe(0.6, _number(draw.random() * 50_000_000)),
        "notes_last_updated": maybe(0.5, _iso_ms(draw.instant())),
    }
    for definition in custom:
        values[definition.name] = _custom_value(draw, definition)
    return values


# --------------------------------------------------------------------------------------------
# Contacts, request log, faults and limits
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Contact:
    number: int
    id: str
    int_id: int
    created_ms: int
    modified_ms: int
    archived_ms: int | None = None
    # The id of the contact this one was merged into (then it is neither live nor archived).
    merged_into: str | None = None
    # Generated on first use: most tests read a small part of a large portal.
    values: dict[str, str | None] | None = None


class _RollingWindow:
    """Accepts at most `limit` events in any `window` seconds (not thread-safe on its own)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._events: deque[float] = deque()

    def try_acquire(self, now: float) -> tuple[bool, int, float]:
        """Count one event at `now` if the window has room.

        Returns:
            Whether it was accepted, the remaining room, and seconds until room frees up.
        """
        while self._events and self._events[0] <= now - self.window:
            self._events.popleft()
        if len(self._events) >= self.limit:
            return False, 0, self._events[0] + self.window - now
        self._events.append(now)
        return True, self.limit - len(self._events), 0.0


class _BadRequestError(Exception):
    """A request HubSpot would reject with a 400 VALIDATION_ERROR."""


# --------------------------------------------------------------------------------------------
# Search filters
# --------------------------------------------------------------------------------------------

_Comparable = Decimal | int | str
_Getter = Callable[[_Contact], list[_Comparable]]
_Predicate = Callable[[_Contact], bool]

_OPERATORS = frozenset(
    {
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "BETWEEN",
        "IN",
        "NOT_IN",
        "HAS_PROPERTY",
        "NOT_HAS_PROPERTY",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    }
)


def _datetime_ms(value: Any) -> int:
    """Parse a datetime filter value: epoch milliseconds or an ISO 8601 string."""
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _BadRequestError(f"'{text}' is not a valid datetime (epoch milliseconds or ISO 8601)") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _date_text(value: Any) -> str:
    """Parse a date filter value: epoch milliseconds (midnight UTC) or YYYY-MM-DD."""
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return _iso_date(int(text))
    try:
        return date.fromisoformat(text[:10]).isoformat()
    except ValueError as exc:
        raise _BadRequestError(f"'{text}' is not a valid date") from exc


def _converter(type_: str) -> Callable[[Any], _Comparable]:
    if type_ == "datetime":
        return _datetime_ms
    if type_ == "date":
        return _date_text
    if type_ == "number":

        def to_number(value: Any) -> Decimal:
            # Exact, like HubSpot's own comparison of 17-digit values (a float would tie them).
            try:
                number = Decimal(str(value).strip())
            except InvalidOperation as exc:
                raise _BadRequestError(f"'{value}' is not a valid number") from exc
            if not number.is_finite():
                raise _BadRequestError(f"'{value}' is not a valid number")
            return number

        return to_number
    return lambda value: str(value).casefold()


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class HubSpotServer(HttpStandIn):
    """A HubSpot CRM v3 compatible contacts API on loopback, in a background thread.

    Use it as a context manager (or call `start()` / `stop()`); clients append `/crm/v3/...` to
    `base_url`. All public methods are thread-safe. Faults and the request log come from
    `HttpStandIn`; faults hit authenticated requests only.

    Args:
        token: The private app token clients must send as `Authorization: Bearer <token>`.
        contacts: Number of contacts generated at start.
        custom_properties: Number of custom properties (long names; 300 or more make the full
            property list too long for one URL).
        seed: Seed of the deterministic data.
        host: Interface to bind.
        port: Port to bind; 0 lets the OS choose a free one.
        rate_limit: Non-search requests allowed per rolling window.
        window_seconds: Length of the rolling window.
        search_rate_per_second: Search requests allowed per second.
        daily_limit: Value of the daily limit headers; the daily count is never enforced.
        max_request_line: Longest accepted request line in bytes; longer gets a 414.
    """

    def __init__(
        self,
        *,
        token: str,
        contacts: int = 1000,
        custom_properties: int = 20,
        seed: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit: int = 190,
        window_seconds: float = 10.0,
        search_rate_per_second: int = 5,
        daily_limit: int = DEFAULT_DAILY_LIMIT,
        max_request_line: int = DEFAULT_MAX_REQUEST_LINE,
    ) -> None:
        if not token:
            raise ValueError("token must not be empty")
        if contacts < 0 or custom_properties < 0:
            raise ValueError("contacts and custom_properties must not be negative")
        if rate_limit < 1 or search_rate_per_second < 1 or window_seconds <= 0:
            raise ValueError("rate limits and the window must be positive")
        super().__init__(host=host, port=port)
        self._token = token
        self._seed = seed
        self._daily_limit = daily_limit
        self._max_request_line = max_request_line
        self._window_seconds = window_seconds

        self._custom = custom_property_definitions(custom_properties)
        self._definitions: dict[str, PropertyDefinition] = {
            d.name: d for d in (*STANDARD_PROPERTIES, *self._custom)
        }
        self._properties_payload = json.dumps(
            {"results": [d.to_json(i) for i, d in enumerate(self._definitions.values())]},
            ensure_ascii=False,
        ).encode()

        # Data: guarded by _lock.
        self._lock = threading.RLock()
        self._contacts: dict[str, _Contact] = {}
        self._next_number = 0
        self._next_id = 100
        self._last_ts = 0
        self._version = 0
        self._indexed_version = -1
        self._live: list[_Contact] = []
        self._live_ids: list[int] = []
        self._archived: list[_Contact] = []
        self._archived_ids: list[int] = []
        self._by_modified: list[_Contact] = []
        self._search_cache: OrderedDict[tuple[int, str], list[_Contact]] = OrderedDict()
        self._mutation_rng = random.Random(seed + 7_919)
        self._generate_initial(contacts)

        # Limits: guarded by _meta_lock.
        self._meta_lock = threading.Lock()
        self._limiter = _RollingWindow(rate_limit, window_seconds)
        self._search_limiter = _RollingWindow(search_rate_per_second, 1.0)
        self._daily_used = 0

    @property
    def property_definitions(self) -> tuple[PropertyDefinition, ...]:
        """Every contact property, standard ones first."""
        return tuple(self._definitions.values())

    # ---- data ------------------------------------------------------------------------------

    def _generate_initial(self, count: int) -> None:
        rng = random.Random(self._seed)
        created = sorted(_DATA_END_MS - rng.randrange(_DATA_SPAN_MS) for _ in range(count))
        previous: _Contact | None = None
        for created_ms in created:
            if previous is not None and rng.random() < 0.1:
                # Bulk import: same create and modify instant as the contact before it.
                created_ms, modified_ms = previous.created_ms, previous.modified_ms
            elif rng.random() < 0.3:
                modified_ms = created_ms
            else:
                modified_ms = created_ms + rng.randrange(_DATA_END_MS - created_ms + 1)
            previous = self._new_contact(rng, created_ms, modified_ms)
            self._last_ts = max(self._last_ts, modified_ms)
        self._version += 1

    def _new_contact(self, rng: random.Random, created_ms: int, modified_ms: int) -> _Contact:
        # Ids grow with gaps and cross digit-count boundaries, as HubSpot's do.
        self._next_id += rng.randint(1, 5)
        contact = _Contact(
            number=self._next_number,
            id=str(self._next_id),
            int_id=self._next_id,
            created_ms=created_ms,
            modified_ms=modified_ms,
        )
        self._next_number += 1
        self._contacts[contact.id] = contact
        return contact

    def _values(self, contact: _Contact) -> dict[str, str | None]:
        if contact.values is None:
            contact.values = _generate_properties(self._seed, contact.number, self._custom)
        return contact.values

    def _all_properties(self, contact: _Contact) -> dict[str, str | None]:
        generated = self._values(contact)
        values = {name: generated.get(name) for name in self._definitions}
        values["createdate"] = _iso_ms(contact.created_ms)
        values["lastmodifieddate"] = _iso_ms(contact.modified_ms)
        values["hs_object_id"] = contact.id
        return values

    def _reindex(self) -> None:
        if self._indexed_version == self._version:
            return
        # _contacts is in ascending id order: ids are only ever appended in increasing order.
        self._live = [c for c in self._contacts.values() if c.archived_ms is None and c.merged_into is None]
        self._live_ids = [c.int_id for c in self._live]
        self._archived = [
            c for c in self._contacts.values() if c.archived_ms is not None and c.merged_into is None
        ]
        self._archived_ids = [c.int_id for c in self._archived]
        self._by_modified = sorted(self._live, key=lambda c: (c.modified_ms, c.int_id))
        self._search_cache.clear()
        self._indexed_version = self._version

    def _next_timestamp(self) -> int:
        self._last_ts = max(int(time.time() * 1000), self._last_ts + 1)
        return self._last_ts

    def _pick(self, n_or_ids: int | Iterable[str], *, live: bool) -> list[_Contact]:
        self._reindex()
        if isinstance(n_or_ids, int):
            pool = self._live
            if n_or_ids > len(pool):
                raise ValueError(f"asked for {n_or_ids} contacts but only {len(pool)} are live")
            chosen = self._mutation_rng.sample(pool, n_or_ids)
            return sorted(chosen, key=lambda c: c.int_id)
        picked = []
        for contact_id in dict.fromkeys(n_or_ids):
            contact = self._contacts.get(str(contact_id))
            if contact is None:
                raise KeyError(f"no contact with id {contact_id}")
            if live and contact.archived_ms is not None:
                raise ValueError(f"contact {contact_id} is archived")
            if live and contact.merged_into is not None:
                raise ValueError(f"contact {contact_id} was merged into {contact.merged_into}")
            picked.append(contact)
        return picked

    def modify_contacts(self, n_or_ids: int | Iterable[str]) -> list[str]:
        """Change some properties of live contacts and bump their `lastmodifieddate`.

        All contacts of one call share one new timestamp: the current time, or one millisecond
        after the previous mutation if that is later, so it is strictly newer than any
        `lastmodifieddate` before the call.

        Args:
            n_or_ids: How many contacts to pick at random (deterministic per seed), or their ids.

        Returns:
            The ids of the modified contacts.

        Raises:
            KeyError: An id does not exist.
            ValueError: An id is archived, or more contacts were asked for than are live.
        """
        with self._lock:
            contacts = self._pick(n_or_ids, live=True)
            stamp = self._next_timestamp()
            rng = self._mutation_rng
            numeric = [d.name for d in self._custom if d.type == "number"]
            for contact in contacts:
                values = self._values(contact)
                current = values.get("jobtitle")
                values["jobtitle"] = rng.choice([t for t in JOB_TITLES if t != current])
                values["lifecyclestage"] = rng.choice(LIFECYCLE_STAGES)
                values["phone"] = None if rng.random() < 0.2 else f"+44 20 7946 {rng.randrange(10_000):04d}"
                if numeric:
                    values[rng.choice(numeric)] = str(rng.randint(0, 1_000_000))
                contact.modified_ms = stamp
            self._version += 1
            return [c.id for c in contacts]

    def archive_contacts(self, n_or_ids: int | Iterable[str]) -> list[str]:
        """Archive (soft-delete) live contacts; they move to the `archived=true` listing.

        Args:
            n_or_ids: How many contacts to pick at random (deterministic per seed), or their ids.

        Returns:
            The ids of the archived contacts.

        Raises:
            KeyError: An id does not exist.
            ValueError: An id is already archived, or more contacts were asked for than are live.
        """
        with self._lock:
            contacts = self._pick(n_or_ids, live=True)
            stamp = self._next_timestamp()
            for contact in contacts:
                contact.archived_ms = stamp
                contact.modified_ms = stamp
            self._version += 1
            return [c.id for c in contacts]

    def add_contacts(self, n: int) -> list[str]:
        """Create new contacts, with ids above every existing one.

        Args:
            n: How many contacts to create.

        Returns:
            The new ids, ascending.
        """
        with self._lock:
            stamp = self._next_timestamp()
            added = [self._new_contact(self._mutation_rng, stamp, stamp) for _ in range(n)]
            self._version += 1
            return [c.id for c in added]

    def set_properties(self, ids: Iterable[str], values: dict[str, str | None]) -> list[str]:
        """Write raw property values (as HubSpot sends them) and bump `lastmodifieddate`.

        Values are stored as given, whether or not they match the property's type: that is how a
        test makes HubSpot send, say, "12k" in a number property. All contacts of one call share
        one new timestamp, as in `modify_contacts`.

        Args:
            ids: The contacts to change (live ones).
            values: Property name to the raw string value (or None to clear it).

        Returns:
            The ids changed.

        Raises:
            KeyError: An id or a property does not exist.
            ValueError: A contact is not live, or a core property was named.
        """
        unknown = [name for name in values if name not in self._definitions]
        if unknown:
            raise KeyError(f"no such properties: {unknown}")
        if CORE_PROPERTIES & set(values):
            raise ValueError(f"{sorted(CORE_PROPERTIES)} are set by the sandbox itself")
        with self._lock:
            contacts = self._pick(ids, live=True)
            stamp = self._next_timestamp()
            for contact in contacts:
                self._values(contact).update(values)
                contact.modified_ms = stamp
            self._version += 1
            return [c.id for c in contacts]

    def define_property(self, name: str, type_: str) -> None:
        """Add a custom contact property, or change the type of an existing one.

        A changed type keeps every stored value as it is (HubSpot converts what it can; tests
        write the new values with `set_properties`). No `lastmodifieddate` moves.

        Args:
            name: Internal name.
            type_: HubSpot type: string, number, date, datetime, enumeration or bool.

        Raises:
            ValueError: Unknown type, or a core property.
        """
        if type_ not in _FIELD_TYPES:
            raise ValueError(f"unknown property type {type_!r}")
        if name in CORE_PROPERTIES:
            raise ValueError(f"{name} is a core property")
        with self._lock:
            existing = self._definitions.get(name)
            self._definitions[name] = PropertyDefinition(
                name=name,
                label=existing.label if existing else name.replace("_", " ").title(),
                type=type_,
                field_type=_FIELD_TYPES[type_],
                group_name=existing.group_name if existing else "sandbox_custom_properties",
                hubspot_defined=existing.hubspot_defined if existing else False,
                options=existing.options if existing and type_ == existing.type else (),
            )
            self._properties_payload = json.dumps(
                {"results": [d.to_json(i) for i, d in enumerate(self._definitions.values())]},
                ensure_ascii=False,
            ).encode()
            self._version += 1

    def merge_contacts(self, primary_id: str, id_to_merge: str, *, new_id: bool = False) -> str:
        """Merge one live contact into another, as `POST /crm/v3/objects/contacts/merge` does.

        The merged-away contact disappears from the live and the archived listings; the primary
        keeps its id, lists the merged ids in `hs_merged_object_ids`, takes the merged contact's
        values for its own empty properties, and is modified now.

        Args:
            primary_id: The contact that survives.
            id_to_merge: The contact merged into it.
            new_id: Give the merged record a new id instead (HubSpot has been reported to do so):
                then the primary is merged away too and its id is listed as well.

        Returns:
            The survivor's id.

        Raises:
            KeyError: An id does not exist.
            ValueError: Either contact is not live, or both ids are the same.
        """
        if str(primary_id) == str(id_to_merge):
            raise ValueError("a contact cannot be merged into itself")
        with self._lock:
            primary, merged = self._pick([primary_id, id_to_merge], live=True)
            stamp = self._next_timestamp()
            values, lost = dict(self._values(primary)), self._values(merged)
            for name, value in lost.items():
                if name != MERGED_IDS_PROPERTY and value not in (None, "") and values.get(name) in (None, ""):
                    values[name] = value
            ids = [
                *(values.get(MERGED_IDS_PROPERTY) or "").split(";"),
                *([primary.id] if new_id else []),
                merged.id,
                *(lost.get(MERGED_IDS_PROPERTY) or "").split(";"),
            ]
            values[MERGED_IDS_PROPERTY] = ";".join(i for i in dict.fromkeys(ids) if i)
            if new_id:
                survivor = self._new_contact(self._mutation_rng, primary.created_ms, stamp)
                primary.merged_into = survivor.id
            else:
                survivor = primary
            survivor.values = values
            survivor.modified_ms = stamp
            merged.merged_into = survivor.id
            self._version += 1
            return survivor.id

    def merged_ids(self) -> dict[str, str]:
        """Every merged-away contact id and the id of the contact it was merged into."""
        with self._lock:
            return {c.id: c.merged_into for c in self._contacts.values() if c.merged_into is not None}

    def snapshot(self) -> dict[str, dict[str, str | None]]:
        """Every live (non-archived) contact with all its property values.

        Returns:
            `{id: {property name: value}}`: what a destination loaded from this portal should hold.
        """
        with self._lock:
            self._reindex()
            return {c.id: self._all_properties(c) for c in self._live}

    def archived_ids(self) -> set[str]:
        """Ids of the archived contacts."""
        with self._lock:
            return {
                c.id for c in self._contacts.values() if c.archived_ms is not None and c.merged_into is None
            }

    # ---- HTTP --------------------------------------------------------------------------------

    json_content_type = "application/json;charset=utf-8"

    def gate(self, request: Request) -> Response | None:
        """What HubSpot's edge checks first: an over-long request line (414), then the token (401)."""
        target = request.environ.get("RAW_URI", request.full_path)
        request_line = f"{request.method} {target} {request.environ.get('SERVER_PROTOCOL', 'HTTP/1.1')}"
        if len(request_line.encode("utf-8", "surrogateescape")) > self._max_request_line:
            return _html(414, "414 Request-URI Too Large")
        if not self._authorised(request.headers.get("Authorization")):
            return self.json(_error(_AUTH_MESSAGE, "INVALID_AUTHENTICATION"), 401)
        return None

    def fault_response(self, fault: Fault, request: Request) -> Response:
        """A 5xx with HubSpot's error body, or HubSpot's 429 with `Retry-After: retry_after`."""
        if fault.kind == "rate_limit":
            return self._too_many(request.path == SEARCH_PATH, fault.retry_after, forced=True)
        return self.json(_error("internal error", "INTERNAL_ERROR"), fault.status)

    def answer(self, request: Request) -> Response:
        """Count the request against its rate limit, then answer it."""
        path = request.path.rstrip("/") or "/"
        is_search = path == SEARCH_PATH
        with self._meta_lock:
            limiter = self._search_limiter if is_search else self._limiter
            accepted, remaining, wait = limiter.try_acquire(time.monotonic())
            if accepted and not is_search:
                self._daily_used += 1
        if not accepted:
            return self._too_many(is_search, wait, forced=False)
        try:
            status, payload = self._route(
                request.method, path, request.query_string.decode("latin-1"), request.get_data()
            )
        except _BadRequestError as exc:
            status, payload = 400, _error(str(exc), "VALIDATION_ERROR")
        response = payload if isinstance(payload, Response) else self.json(payload, status)
        if not is_search:
            response.headers.update(self._limit_headers(remaining))
        return response

    def _authorised(self, authorization: str | None) -> bool:
        if authorization is None:
            return False
        scheme, _, credential = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credential.strip().encode(), self._token.encode()
        )

    def _limit_headers(self, remaining: int) -> dict[str, str]:
        with self._meta_lock:
            daily_remaining = max(self._daily_limit - self._daily_used, 0)
        return {
            "X-HubSpot-RateLimit-Max": str(self._limiter.limit),
            "X-HubSpot-RateLimit-Remaining": str(remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self._window_seconds * 1000)),
            "X-HubSpot-RateLimit-Daily": str(self._daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(daily_remaining),
        }

    def _too_many(self, is_search: bool, wait: float, *, forced: bool) -> Response:
        if is_search:
            # HubSpot's search answers carry no rate-limit headers; clients pace search themselves.
            response = self.json(_rate_limit_body("You have reached your secondly limit.", "SECONDLY"), 429)
        else:
            message = "You have reached your ten_secondly_rolling limit."
            response = self.json(_rate_limit_body(message, "TEN_SECONDLY_ROLLING"), 429)
            response.headers.update(self._limit_headers(0))
        if forced:
            response.headers["Retry-After"] = str(int(wait))
        elif not is_search:
            # Whole seconds, rounded up, so a client that waits exactly this long gets through.
            response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return response

    def _route(self, method: str, path: str, query: str, body: bytes) -> tuple[int, Json | Response]:
        if path == SEARCH_PATH:
            if method != "POST":
                return 405, _error(f"{method} is not allowed on {path}", "VALIDATION_ERROR")
            try:
                request = json.loads(body or b"{}")
            except (ValueError, UnicodeDecodeError) as exc:
                raise _BadRequestError(f"Invalid input JSON: {exc}") from exc
            return 200, self._search(request)
        if path == MERGE_PATH:
            if method != "POST":
                return 405, _error(f"{method} is not allowed on {path}", "VALIDATION_ERROR")
            return self._merge(body)
        if method != "GET":
            return 405, _error(f"{method} is not allowed on {path}", "VALIDATION_ERROR")
        params = parse_qs(query, keep_blank_values=True)
        if path == CONTACTS_PATH:
            return 200, self._list(params)
        if path == PROPERTIES_PATH:
            return 200, Response(self._properties_payload, 200, content_type=self.json_content_type)
        if path.startswith(CONTACTS_PATH + "/"):
            return self._read_one(path.removeprefix(CONTACTS_PATH + "/"), params)
        return 404, _error(f"Unable to find a resource at {path}", "OBJECT_NOT_FOUND")

    # ---- endpoints -----------------------------------------------------------------------------

    def _wanted(self, raw: Iterable[str] | None) -> list[str] | None:
        if raw is None:
            return None
        names = [name.strip() for item in raw for name in str(item).split(",") if name.strip()]
        # HubSpot ignores properties that do not exist rather than failing the request.
        return [name for name in dict.fromkeys(names) if name in self._definitions]

    def _render(self, contact: _Contact, wanted: list[str] | None) -> Json:
        values = self._values(contact)
        core = {
            "createdate": _iso_ms(contact.created_ms),
            "lastmodifieddate": _iso_ms(contact.modified_ms),
            "hs_object_id": contact.id,
        }
        names = DEFAULT_PROPERTIES if wanted is None else (*wanted, *ALWAYS_RETURNED)
        rendered: Json = {
            "id": contact.id,
            "properties": {
                name: core[name] if name in core else values.get(name) for name in dict.fromkeys(names)
            },
            "createdAt": core["createdate"],
            "updatedAt": core["lastmodifieddate"],
            "archived": contact.archived_ms is not None,
        }
        if contact.archived_ms is not None:
            rendered["archivedAt"] = _iso_ms(contact.archived_ms)
        return rendered

    def _list(self, params: dict[str, list[str]]) -> Json:
        limit = _int_param(params, "limit", DEFAULT_LIST_LIMIT)
        if limit < 1:
            raise _BadRequestError("limit must be a positive integer")
        # HubSpot quietly caps list pages at 100 rather than rejecting a larger limit.
        limit = min(limit, MAX_LIST_LIMIT)
        after = _int_param(params, "after", 0)
        archived = params.get("archived", ["false"])[-1].lower() == "true"
        wanted = self._wanted(params.get("properties"))
        with self._lock:
            self._reindex()
            contacts, ids = (self._archived, self._archived_ids) if archived else (self._live, self._live_ids)
            start = bisect.bisect_left(ids, after)
            page = contacts[start : start + limit]
            results = [self._render(c, wanted) for c in page]
            more = start + limit < len(contacts)
        response: Json = {"results": results}
        if more and page:
            next_after = str(page[-1].int_id + 1)
            link_params = {k: v[-1] if len(v) == 1 else ",".join(v) for k, v in params.items()}
            link_params["after"] = next_after
            response["paging"] = {
                "next": {
                    "after": next_after,
                    "link": f"{self._link_base()}{CONTACTS_PATH}?{urlencode(link_params)}",
                }
            }
        return response

    def _link_base(self) -> str:
        try:
            return self.base_url
        except RuntimeError:
            return ""

    def _read_one(self, contact_id: str, params: dict[str, list[str]]) -> tuple[int, Json]:
        archived = params.get("archived", ["false"])[-1].lower() == "true"
        wanted = self._wanted(params.get("properties"))
        with self._lock:
            contact = self._contacts.get(contact_id)
            while contact is not None and contact.merged_into is not None:
                contact = self._contacts.get(contact.merged_into)
            if contact is None or (contact.archived_ms is not None) != archived:
                return 404, _error("Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND")
            return 200, self._render(contact, wanted)

    def _merge(self, body: bytes) -> tuple[int, Json]:
        try:
            request = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise _BadRequestError(f"Invalid input JSON: {exc}") from exc
        if not isinstance(request, dict):
            raise _BadRequestError("Invalid input JSON: the body must be an object")
        primary, other = request.get("primaryObjectId"), request.get("objectIdToMerge")
        if not isinstance(primary, str | int) or not isinstance(other, str | int):
            raise _BadRequestError("primaryObjectId and objectIdToMerge are required")
        try:
            survivor = self.merge_contacts(str(primary), str(other))
        except KeyError as exc:
            return 404, _error(f"Object not found: {exc.args[0]}", "OBJECT_NOT_FOUND")
        except ValueError as exc:
            raise _BadRequestError(str(exc)) from exc
        with self._lock:
            return 200, self._render(self._contacts[survivor], None)

    def _search(self, request: Any) -> Json:
        if not isinstance(request, dict):
            raise _BadRequestError("Invalid input JSON: the body must be an object")
        limit = _int_value(request.get("limit", DEFAULT_SEARCH_LIMIT), "limit")
        after = _int_value(request.get("after", 0) or 0, "after")
        if not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise _BadRequestError(f"limit must be between 1 and {MAX_SEARCH_LIMIT}, got {limit}")
        if after < 0:
            raise _BadRequestError("after must not be negative")
        if after + limit > SEARCH_RESULT_CAP:
            raise _BadRequestError(
                f"Search results are limited to the first {SEARCH_RESULT_CAP} results: "
                f"after ({after}) + limit ({limit}) is beyond that. Narrow the query instead."
            )
        groups = self._compile_groups(request.get("filterGroups") or [])
        sort_name, descending = self._sort(request.get("sorts") or [])
        query = request.get("query")
        if query is not None and not isinstance(query, str):
            raise _BadRequestError("query must be a string")
        raw_properties = request.get("properties")
        if raw_properties is not None and not isinstance(raw_properties, list):
            raise _BadRequestError("properties must be a list of property names")
        wanted = self._wanted(raw_properties)
        key = json.dumps(
            [request.get("filterGroups"), request.get("sorts"), query], sort_keys=True, default=str
        )
        with self._lock:
            self._reindex()
            cache_key = (self._version, key)
            matches = self._search_cache.get(cache_key)
            if matches is None:
                matches = self._match(groups, sort_name, descending, query)
                self._search_cache[cache_key] = matches
                while len(self._search_cache) > 16:
                    self._search_cache.popitem(last=False)
            page = matches[after : after + limit]
            response: Json = {"total": len(matches), "results": [self._render(c, wanted) for c in page]}
        if after + limit < len(matches):
            response["paging"] = {"next": {"after": str(after + limit)}}
        return response

    def _getter(self, name: str) -> _Getter:
        if name == "lastmodifieddate":
            return lambda c: [c.modified_ms]
        if name == "createdate":
            return lambda c: [c.created_ms]
        if name == "hs_object_id":
            return lambda c: [Decimal(c.int_id)]
        definition = self._definitions[name]
        convert = _converter(definition.type)
        multi = definition.type == "enumeration"

        def get(contact: _Contact) -> list[_Comparable]:
            value = self._values(contact).get(name)
            if value is None or value == "":
                return []
            if multi:
                return [convert(part) for part in value.split(";")]
            try:
                return [convert(value)]
            except _BadRequestError:
                return []

        return get

    def _compile_groups(self, raw_groups: Any) -> list[list[_Predicate]]:
        if not isinstance(raw_groups, list):
            raise _BadRequestError("filterGroups must be a list")
        if len(raw_groups) > MAX_FILTER_GROUPS:
            raise _BadRequestError(f"at most {MAX_FILTER_GROUPS} filterGroups are allowed")
        total = 0
        groups = []
        for raw_group in raw_groups:
            filters = raw_group.get("filters") if isinstance(raw_group, dict) else None
            if not isinstance(filters, list) or not filters:
                raise _BadRequestError("each filter group needs a non-empty filters list")
            if len(filters) > MAX_FILTERS_PER_GROUP:
                raise _BadRequestError(f"at most {MAX_FILTERS_PER_GROUP} filters are allowed per group")
            total += len(filters)
            groups.append([self._compile_filter(f) for f in filters])
        if total > MAX_FILTERS_TOTAL:
            raise _BadRequestError(f"at most {MAX_FILTERS_TOTAL} filters are allowed in all")
        return groups

    def _compile_filter(self, raw: Any) -> _Predicate:
        if not isinstance(raw, dict):
            raise _BadRequestError("each filter must be an object")
        name = raw.get("propertyName")
        operator = str(raw.get("operator", "")).upper()
        if not isinstance(name, str) or name not in self._definitions:
            raise _BadRequestError(f"There was a problem with the request: unknown property '{name}'")
        if operator not in _OPERATORS:
            raise _BadRequestError(f"Unsupported filter operator '{operator}'")
        get = self._getter(name)
        if operator == "HAS_PROPERTY":
            return lambda c: bool(get(c))
        if operator == "NOT_HAS_PROPERTY":
            return lambda c: not get(c)
        convert = _converter(self._definitions[name].type)
        if operator in ("IN", "NOT_IN"):
            raw_values = raw.get("values")
            if not isinstance(raw_values, list) or not raw_values:
                raise _BadRequestError(f"{operator} needs a non-empty 'values' list")
            allowed = {convert(v) for v in raw_values}
            if operator == "IN":
                return lambda c: any(v in allowed for v in get(c))
            return lambda c: not any(v in allowed for v in get(c))
        if "value" not in raw or raw["value"] is None:
            raise _BadRequestError(f"{operator} needs a 'value'")
        if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            token = str(raw["value"]).strip("*").casefold()

            def found(contact: _Contact) -> bool:
                return any(token in str(v).casefold() for v in get(contact))

            return found if operator == "CONTAINS_TOKEN" else (lambda c: not found(c))
        value = convert(raw["value"])
        if operator == "BETWEEN":
            if raw.get("highValue") is None:
                raise _BadRequestError("BETWEEN needs a 'highValue'")
            high = convert(raw["highValue"])
            return lambda c: any(_between(value, v, high) for v in get(c))
        compare = _COMPARISONS[operator]
        if operator == "NEQ":
            return lambda c: not any(v == value for v in get(c))
        return lambda c: any(compare(v, value) for v in get(c))

    def _sort(self, raw_sorts: Any) -> tuple[str, bool]:
        if not isinstance(raw_sorts, list):
            raise _BadRequestError("sorts must be a list")
        if not raw_sorts:
            return "hs_object_id", False
        if len(raw_sorts) > 1:
            raise _BadRequestError("Only one sort is supported per search")
        raw = raw_sorts[0]
        if isinstance(raw, str):
            name, descending = raw.removeprefix("-"), raw.startswith("-")
        elif isinstance(raw, dict):
            name = str(raw.get("propertyName", ""))
            descending = str(raw.get("direction", "ASCENDING")).upper() == "DESCENDING"
        else:
            raise _BadRequestError("each sort must be an object or a property name")
        if name not in self._definitions:
            raise _BadRequestError(f"There was a problem with the request: unknown sort property '{name}'")
        return name, descending

    def _match(
        self, groups: list[list[_Predicate]], sort_name: str, descending: bool, query: str | None
    ) -> list[_Contact]:
        # The pre-sorted indexes make the common sorts free; other sorts sort the matches.
        candidates = self._by_modified if sort_name == "lastmodifieddate" else self._live
        if groups:
            candidates = [c for c in candidates if any(all(p(c) for p in group) for group in groups)]
        if query:
            needle = query.strip().casefold()
            searchable = ("firstname", "lastname", "email", "phone", "company", "website")
            candidates = [
                c
                for c in candidates
                if any(needle in (self._values(c).get(name) or "").casefold() for name in searchable)
                or needle == c.id
            ]
        if sort_name not in ("lastmodifieddate", "hs_object_id"):
            get = self._getter(sort_name)
            present = [c for c in candidates if get(c)]
            missing = [c for c in candidates if not get(c)]
            present.sort(key=lambda c: (min(get(c)), c.int_id), reverse=descending)
            return present + missing
        return list(reversed(candidates)) if descending else list(candidates)


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "EQ": lambda a, b: a == b,
    "LT": lambda a, b: a < b,
    "LTE": lambda a, b: a <= b,
    "GT": lambda a, b: a > b,
    "GTE": lambda a, b: a >= b,
}


def _between(low: Any, value: Any, high: Any) -> bool:
    try:
        return bool(low <= value <= high)
    except TypeError:
        return False


def _int_value(raw: Any, name: str) -> int:
    try:
        return int(str(raw))
    except ValueError as exc:
        raise _BadRequestError(f"{name} must be an integer, got '{raw}'") from exc


def _int_param(params: dict[str, list[str]], name: str, default: int) -> int:
    values = params.get(name)
    if not values or values[-1] == "":
        return default
    return _int_value(values[-1], name)


def _error(message: str, category: str) -> Json:
    return {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
    }


def _rate_limit_body(message: str, policy: str) -> Json:
    return {
        "status": "error",
        "message": message,
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": policy,
        "requestId": str(uuid.uuid4()),
    }


def _html(status: int, title: str) -> Response:
    body = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n"
        f"<body>\r\n<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
    )
    return Response(body.encode(), status, content_type="text/html")


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a sandbox portal until Ctrl-C, printing its base URL (never the token).

    Args:
        argv: Command-line arguments; defaults to `sys.argv[1:]`.

    Returns:
        The process exit code.
    """
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.hubspot",
        description="Serve a HubSpot CRM v3 sandbox portal on loopback until Ctrl-C.",
    )
    parser.add_argument("--token", required=True, help="private app token clients must send")
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--custom-properties", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate-limit", type=int, default=190)
    parser.add_argument("--window-seconds", type=float, default=10.0)
    parser.add_argument("--search-rate-per-second", type=int, default=5)
    args = parser.parse_args(argv)
    server = HubSpotServer(
        token=args.token,
        contacts=args.contacts,
        custom_properties=args.custom_properties,
        seed=args.seed,
        port=args.port,
        rate_limit=args.rate_limit,
        window_seconds=args.window_seconds,
        search_rate_per_second=args.search_rate_per_second,
    )
    serve_until_signalled(server, lambda running: print(running.base_url, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
