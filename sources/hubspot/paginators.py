"""Paginators for dlt's `RESTClient` over HubSpot's contacts endpoints.

The list endpoint pages with an opaque cursor (`paging.next.after`), which dlt's
`JSONResponseCursorPaginator` follows as it is (`list_paginator`).

Search is different. It pages with an offset (`after`) and refuses to go past the first 10,000
results of a query; an offset also shifts when a contact changes during the run (it moves to the
end of a `lastmodifieddate` order), which skips a contact at the next page boundary.
`ModifiedSinceKeysetPaginator` therefore never uses offsets: every request asks for the first
page of a narrower query, moving the lower bound on `lastmodifieddate` to the newest value of
the page before (keyset paging). Contacts that share that value are asked for again and
de-duplicated by the caller. When a whole page shares one value - a mass update can give
thousands of contacts one identical timestamp - it pages through that one value by
`hs_object_id` instead, then moves past it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dlt.sources.helpers.rest_client.paginators import BasePaginator, JSONResponseCursorPaginator
from requests import Request, Response

from sources.hubspot.schema import contact_id_of, last_modified_ms
from sources.hubspot.settings import LAST_MODIFIED, SEARCH_PAGE_SIZE
from utils.errors import MalformedPayloadError

OBJECT_ID = "hs_object_id"


def list_paginator() -> JSONResponseCursorPaginator:
    """The paginator of `GET /crm/v3/objects/contacts`: follow `paging.next.after` until it is absent."""
    return JSONResponseCursorPaginator(cursor_path="paging.next.after", cursor_param="after")


class ModifiedSinceKeysetPaginator(BasePaginator):
    """Pages through the contacts modified at or after an instant, oldest first, without offsets.

    Each request is `POST .../contacts/search` with one of two bodies:

    * range: `lastmodifieddate` GTE (or GT) the lower bound, sorted by `lastmodifieddate`
      ascending. After a full page the lower bound becomes the page's newest value (GTE).
    * tie: `lastmodifieddate` EQ one value and `hs_object_id` GT the last id seen, sorted by
      `hs_object_id` ascending - used when a full range page holds a single value. When the tie
      is exhausted the lower bound moves just past the value (GT) and range paging resumes.

    So no request pages past the first 200 results, whatever the size of the increment.

    Args:
        since_ms: Lower bound (inclusive) on `lastmodifieddate`, in epoch milliseconds.
        properties: Properties to return for each contact.
        page_size: Results per request (HubSpot allows 1 to 200).
    """

    def __init__(
        self, since_ms: int, properties: Sequence[str], *, page_size: int = SEARCH_PAGE_SIZE
    ) -> None:
        super().__init__()
        self.lower_ms = since_ms
        self.lower_inclusive = True
        self.tie_ms: int | None = None
        self.tie_after_id: int | None = None
        self.properties = list(properties)
        self.page_size = page_size
        self.tie_blocks = 0

    def body(self) -> dict[str, Any]:
        """The search body of the next request."""
        if self.tie_ms is None:
            operator = "GTE" if self.lower_inclusive else "GT"
            filters = [{"propertyName": LAST_MODIFIED, "operator": operator, "value": str(self.lower_ms)}]
            sort = LAST_MODIFIED
        else:
            filters = [{"propertyName": LAST_MODIFIED, "operator": "EQ", "value": str(self.tie_ms)}]
            if self.tie_after_id is not None:
                filters.append({"propertyName": OBJECT_ID, "operator": "GT", "value": str(self.tie_after_id)})
            sort = OBJECT_ID
        return {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
            "properties": self.properties,
            "limit": self.page_size,
        }

    def init_request(self, request: Request) -> None:
        """Set the first request's body."""
        request.json = self.body()

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        """Move the bounds past the page just received, or stop when nothing is left."""
        results = data or []
        payload = response.json()
        more = bool(isinstance(payload, dict) and (payload.get("paging") or {}).get("next"))
        if self.tie_ms is not None:
            if more and results:
                last_id = max(int(contact_id_of(r)) for r in results)
                if self.tie_after_id is not None and last_id <= self.tie_after_id:
                    raise MalformedPayloadError(
                        f"hubspot: search for contacts with {OBJECT_ID} > {self.tie_after_id} returned "
                        f"{OBJECT_ID} {last_id}; the API ignores the filter, so paging cannot progress."
                    )
                self.tie_after_id = last_id
            else:
                # Every contact at this instant has been seen: continue strictly after it.
                self.lower_ms, self.lower_inclusive = self.tie_ms, False
                self.tie_ms = self.tie_after_id = None
            return
        if not more or not results:
            self._has_next_page = False
            return
        stamps = [last_modified_ms(r) for r in results]
        newest, oldest = max(stamps), min(stamps)
        if newest < self.lower_ms:
            raise MalformedPayloadError(
                f"hubspot: search for {LAST_MODIFIED} >= {self.lower_ms} returned older contacts; "
                "the API ignores the filter, so paging cannot progress."
            )
        if newest == oldest:
            # A full page of one instant: more contacts may share it than fit in a page, and
            # their order within it is unspecified. Page through that instant by id.
            self.tie_ms, self.tie_after_id = newest, None
            self.tie_blocks += 1
        else:
            self.lower_ms, self.lower_inclusive = newest, True

    def update_request(self, request: Request) -> None:
        """Write the next body (always the first page of the narrowed query: no offset)."""
        request.json = self.body()
