"""HubSpot: CRM contacts, loaded incrementally with every property as a typed column.

Two resources write the one `contacts` table, merged on `id`:

* `contacts` - live contacts. The first run lists them all (`GET /crm/v3/objects/contacts`, the
  properties requested in URL-sized batches and merged per contact), then searches for what changed
  while it listed. Later runs search only the contacts modified since the last run
  (`POST .../contacts/search` on `lastmodifieddate`, ascending, keyset-paged so the 10,000-result
  cap of a search never applies). The cursor is dlt's incremental state on `lastmodifieddate`.
* `archived_contacts` - deletions. Search never returns archived contacts, so every run lists
  `archived=true` in full and emits a row with `archived = true` (dlt's hard-delete hint) for
  each contact archived since the previous pass began: the merge deletes it from the table.

Merged contacts: HubSpot lists a contact merged into another neither as live nor as archived;
the survivor names it in `hs_merged_object_ids` (and the merge updates the survivor, so the next
search returns it). Every time `contacts` emits a contact, it also emits a deletion row for each
id in that property, so a merged-away contact leaves the table on the next run, full or
incremental.

The table's columns follow HubSpot's property types (number -> DECIMAL(38, 18), date -> date,
datetime -> timestamp, bool -> boolean, anything else text); a property that changed type, or a
value that does not match its type, loads into a variant column instead of stopping the run (see
`schema.py`). Requests are paced from HubSpot's rate-limit headers; see `pacing.py`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import dlt
from dlt.common.schema.typing import TColumnSchema
from dlt.extract.exceptions import CurrentSourceSchemaNotAvailable
from dlt.sources import DltResource

from sources.hubspot.client import HubSpotApi
from sources.hubspot.paginators import ModifiedSinceKeysetPaginator
from sources.hubspot.schema import (
    ContactColumns,
    Row,
    contact_id_of,
    convert,
    deletion_hints,
    deletion_row,
    last_modified_ms,
    merged_ids,
    parse_datetime,
    to_epoch_ms,
)
from sources.hubspot.settings import (
    ARCHIVED_COLUMN,
    DEFAULT_LOOKBACK_SECONDS,
    DEFAULT_SEARCH_REQUESTS_PER_SECOND,
    ID_COLUMN,
    LAST_MODIFIED,
)

# De-duplication memory of one search pass is pruned of contacts the search can no longer return
# once it holds this many.
_PRUNE_AT = 50_000


@dlt.source(section="hubspot", name="hubspot")
def hubspot_source(
    base_url: str = dlt.config.value,
    access_token: str = dlt.secrets.value,
    search_requests_per_second: float = DEFAULT_SEARCH_REQUESTS_PER_SECOND,
    lookback_seconds: float = DEFAULT_LOOKBACK_SECONDS,
) -> Sequence[DltResource]:
    """Extract HubSpot contacts: live ones incrementally, archived ones as deletions.

    Args:
        base_url: API root, e.g. `https://api.hubapi.com` (`sources.hubspot.base_url`).
        access_token: Private app token with the crm.objects.contacts.read and
            crm.schemas.contacts.read scopes (`sources.hubspot.access_token`, a secret).
        search_requests_per_second: The portal's search limit, used to pace searches
            (`sources.hubspot.search_requests_per_second`).
        lookback_seconds: How far before the previous run's high-water mark each run searches
            again, for contacts HubSpot indexed late (`sources.hubspot.lookback_seconds`).

    Returns:
        The `contacts` and `archived_contacts` resources (both load the `contacts` table).
    """
    api = HubSpotApi(base_url, access_token, search_requests_per_second=search_requests_per_second)
    # dlt's `lag` re-reads that many seconds before the stored cursor (and turns off its boundary
    # de-duplication, which the merge on `id` makes unnecessary).
    cursor = dlt.sources.incremental[datetime](LAST_MODIFIED, lag=lookback_seconds or None)
    return (
        contacts(api, last_modified=cursor, lookback_seconds=lookback_seconds),
        archived_contacts(api, lookback_seconds=lookback_seconds),
    )


@dlt.resource(
    name="contacts",
    write_disposition="merge",
    primary_key=ID_COLUMN,
    columns=deletion_hints(),
)
def contacts(
    api: HubSpotApi,
    last_modified: dlt.sources.incremental[datetime] = dlt.sources.incremental(LAST_MODIFIED),
    lookback_seconds: float = DEFAULT_LOOKBACK_SECONDS,
) -> Iterator[Any]:
    """Yield live contacts: all on the first run, then those modified since the last run.

    Args:
        api: The HubSpot client.
        last_modified: dlt's incremental cursor on `lastmodifieddate`.
        lookback_seconds: Overlap of the first run's catch-up search.

    Yields:
        Batches of typed contact rows (and deletion rows for contacts merged into them); the
        first carries the column hints of every property.
    """
    catalogue = api.properties()
    names = [p.name for p in catalogue]
    columns = _contact_columns(catalogue)
    start = last_modified.start_value
    if start is None:
        # First run. A listing by id is not a snapshot: a contact can change after its page was
        # read. So note the newest modification now, list everything, then search from that
        # instant for whatever changed meanwhile - the cursor then ends past all of it.
        high_water = api.latest_modified_ms()
        since_ms = max((high_water or 0) - int(lookback_seconds * 1000), 0)
        emitter = _Emitter(columns, remember_from=since_ms)
        for page in api.list_contacts(api.property_batches(names)):
            yield from emitter.rows(page)
    else:
        since_ms = to_epoch_ms(start)  # dlt has already moved it back by the lookback (lag)
        emitter = _Emitter(columns, remember_from=since_ms)
    paginator = ModifiedSinceKeysetPaginator(since_ms, names)
    for page in api.search_modified_since(paginator):
        yield from emitter.rows(page)
        emitter.forget_before(paginator.lower_ms)
    columns.warn()


def _contact_columns(catalogue: Sequence[Any]) -> ContactColumns:
    """Place every property, given the `contacts` columns dlt's stored schema already has.

    Outside a pipeline (a resource iterated on its own) there is no stored schema: every
    property gets the column of its name.
    """
    try:
        schema = dlt.current.source_schema()
    except CurrentSourceSchemaNotAvailable:
        return ContactColumns(catalogue)
    table = schema.tables.get("contacts") or {}
    stored: dict[str, TColumnSchema] = dict(table.get("columns") or {})
    return ContactColumns(catalogue, stored, schema.naming.normalize_identifier)


class _Emitter:
    """Turns pages into rows once: batches carry the column hints, repeats are dropped.

    Each contact is followed by a deletion row for every contact merged into it (see the module).

    Keyset paging asks for the contacts at a page boundary again, and the first run's catch-up
    search re-reads contacts the listing loaded. A contact is emitted again only with a newer
    `lastmodifieddate` (the merge keeps the newest). Only contacts the search can still return
    (at or after `remember_from`) are remembered, so a full listing does not fill memory.
    """

    def __init__(self, columns: ContactColumns, *, remember_from: int) -> None:
        self.columns = columns
        self.remember_from = remember_from
        self.emitted: dict[str, int] = {}

    def rows(self, page: list[dict[str, Any]]) -> Iterator[Any]:
        batch: list[Row] = []
        for contact in page:
            contact_id = contact_id_of(contact)
            stamp = last_modified_ms(contact)
            if self.emitted.get(contact_id, -1) >= stamp:
                continue
            if stamp >= self.remember_from:
                self.emitted[contact_id] = stamp
            row = self.columns.row(contact)
            batch.append(row)
            batch.extend(
                {ID_COLUMN: merged, ARCHIVED_COLUMN: True, LAST_MODIFIED: row[LAST_MODIFIED]}
                for merged in merged_ids(contact)
            )
        if not batch:
            return
        # The first batch carries every column's hint; a later one those of columns new in it.
        hints = self.columns.new_hints()
        yield dlt.mark.with_hints(batch, dlt.mark.make_hints(columns=hints)) if hints else batch

    def forget_before(self, lower_ms: int) -> None:
        """Drop memory of contacts older than the search's lower bound: it cannot return them."""
        self.remember_from = max(self.remember_from, lower_ms)
        if len(self.emitted) >= _PRUNE_AT:
            self.emitted = {k: v for k, v in self.emitted.items() if v >= lower_ms}


@dlt.resource(
    name="archived_contacts",
    table_name="contacts",
    write_disposition="merge",
    primary_key=ID_COLUMN,
    columns=deletion_hints(),
)
def archived_contacts(
    api: HubSpotApi, lookback_seconds: float = DEFAULT_LOOKBACK_SECONDS
) -> Iterator[list[Row]]:
    """Yield a deletion row for each contact archived since the previous archived pass began.

    The archived listing cannot be filtered, so it is read in full on every run; only contacts
    whose `archivedAt` is at or after the previous pass's start (server time, less the lookback)
    are emitted. A contact archived while a pass runs, after its page was read, is therefore
    picked up by the next run. The first run emits every archived contact (deleting nothing that
    is absent is harmless).

    Args:
        api: The HubSpot client.
        lookback_seconds: Safety margin subtracted from the pass's start.

    Yields:
        Batches of `{"id", "archived": True, "lastmodifieddate"}` rows.
    """
    state = dlt.current.resource_state()
    since_text = state.get("archived_since")
    since = parse_datetime(since_text) if isinstance(since_text, str) else None
    pass_started: datetime | None = None
    for page in api.archived_pages():
        if pass_started is None:
            pass_started = _server_time(page.response.headers.get("Date"))
        rows = [deletion_row(c) for c in page if _archived_since(c, since)]
        if rows:
            yield rows
    if pass_started is None:
        pass_started = datetime.now(UTC)
    # `Date` has whole seconds: one more second of margin besides the lookback.
    state["archived_since"] = (pass_started - timedelta(seconds=lookback_seconds + 1)).isoformat()


def _archived_since(contact: dict[str, Any], since: datetime | None) -> bool:
    """Whether the contact was archived at or after `since` (or the time is unknown)."""
    if since is None:
        return True
    archived_at = convert(contact.get("archivedAt"), "timestamp", contact_id_of(contact), "archivedAt")
    return not isinstance(archived_at, datetime) or archived_at >= since


def _server_time(header: str | None) -> datetime | None:
    """HubSpot's clock from a `Date` header (so a skewed local clock cannot lose deletions)."""
    if not header:
        return None
    try:
        moment = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
