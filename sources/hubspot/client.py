"""HubSpot CRM v3 contacts API on dlt's `RESTClient`: paced, paginated, with clear errors.

`HubSpotApi` owns one `RESTClient` whose session retries 5xx, 429 and dropped connections (dlt's
retry policy, configured in the `runtime` section - the only place a request is retried) and
whose transport paces every attempt from HubSpot's rate-limit headers (`pacing.PacedAdapter`). Its methods return what the resources need:
the property catalogue, the full listing with properties fetched in URL-sized batches, the keyset
search of modified contacts, and the listing of archived contacts. Failures surface as this
project's errors, naming `sources.hubspot.*` settings and never the token.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import quote, quote_plus

from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.helpers.rest_client.client import PageData
from dlt.sources.helpers.rest_client.paginators import BasePaginator
from requests import HTTPError, RequestException, Response
from requests.exceptions import JSONDecodeError

from sources.hubspot.pacing import PacedAdapter, RollingWindowPacer
from sources.hubspot.paginators import ModifiedSinceKeysetPaginator, list_paginator
from sources.hubspot.schema import ContactProperty, contact_id_of, last_modified_ms
from sources.hubspot.settings import (
    CONTACTS_PATH,
    DEFAULT_RATE_INTERVAL_SECONDS,
    DEFAULT_RATE_LIMIT,
    DEFAULT_SEARCH_REQUESTS_PER_SECOND,
    LAST_MODIFIED,
    LIST_PAGE_SIZE,
    LIST_QUERY_OVERHEAD,
    MAX_URL_LENGTH,
    PROPERTIES_PATH,
    SEARCH_INTERVAL_SECONDS,
    SEARCH_PATH,
)
from utils.errors import (
    ConfigurationError,
    MalformedPayloadError,
    PipelineError,
    UpstreamUnavailableError,
)
from utils.http_errors import HttpSource, ensure_reachable, status_error
from utils.json_numbers import ExactJsonClient

Contact = dict[str, Any]

AUTH_SETTING = "sources.hubspot.access_token"
BASE_URL_SETTING = "sources.hubspot.base_url"
HTTP_SOURCE = HttpSource(
    "hubspot",
    base_url_setting=BASE_URL_SETTING,
    auth_setting=AUTH_SETTING,
    hints={
        401: "Use a private app token.",
        403: "The private app needs the scopes crm.objects.contacts.read and crm.schemas.contacts.read.",
        414: "Property lists are split to stay under MAX_URL_LENGTH in sources/hubspot/settings.py; lower it.",
    },
)


class HubSpotApi:
    """The contacts endpoints of one HubSpot portal, paced to its rate limits.

    Creating it makes no request.

    Args:
        base_url: API root, e.g. `https://api.hubapi.com` (`sources.hubspot.base_url`).
        access_token: Private app token, sent as `Authorization: Bearer` (`sources.hubspot.access_token`).
        search_requests_per_second: The portal's search limit; search answers carry no rate-limit
            headers, so this is how search is paced.
        max_url_length: Longest URL sent; property lists are split to stay under it.
    """

    def __init__(
        self,
        base_url: str,
        access_token: str,
        *,
        search_requests_per_second: float = DEFAULT_SEARCH_REQUESTS_PER_SECOND,
        max_url_length: int = MAX_URL_LENGTH,
    ) -> None:
        if not access_token or not access_token.strip():
            raise ConfigurationError(
                f"hubspot: the access token is empty - set `{AUTH_SETTING}` "
                "(SOURCES__HUBSPOT__ACCESS_TOKEN) to a private app token with the "
                "crm.objects.contacts.read scope."
            )
        if search_requests_per_second <= 0:
            raise ConfigurationError(
                "hubspot: `sources.hubspot.search_requests_per_second` must be positive, "
                f"got {search_requests_per_second}."
            )
        self.base_url = base_url.rstrip("/")
        self.max_url_length = max_url_length
        self.pacer = RollingWindowPacer(DEFAULT_RATE_LIMIT, DEFAULT_RATE_INTERVAL_SECONDS)
        # A fractional rate such as 0.5 per second becomes one request per two seconds.
        search_limit = max(1, math.floor(search_requests_per_second))
        self.search_pacer = RollingWindowPacer(
            search_limit,
            SEARCH_INTERVAL_SECONDS * search_limit / search_requests_per_second,
            learn_from_headers=False,
        )
        # dlt's retrying session (settings from the `runtime` config section), errors left to us.
        session = Client(raise_for_status=False).session
        adapter = PacedAdapter(self.pacer, self.search_pacer)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        # Numbers as Decimal, not float (utils/json_numbers.py): HubSpot sends property values as
        # strings, but one sent as a JSON number must not lose digits to a double before it is typed.
        self.client = ExactJsonClient(
            base_url=self.base_url,
            headers={"Accept": "application/json"},
            auth=BearerTokenAuth(token=access_token.strip()),
            session=session,
        )

    # ---- the endpoints ---------------------------------------------------------------------

    def properties(self) -> list[ContactProperty]:
        """Every contact property of the portal, custom ones included (`GET /crm/v3/properties/contacts`)."""
        # The run's first request: a host that refuses, does not resolve or fails TLS fails now,
        # in seconds, naming the setting - not after the HTTP client's retries.
        ensure_reachable(HTTP_SOURCE, self.base_url)
        payload = self._request("GET", PROPERTIES_PATH)
        results = payload.get("results") if isinstance(payload, dict) else None
        if not isinstance(results, list) or not results:
            raise MalformedPayloadError(
                f"hubspot: GET /{PROPERTIES_PATH} should list the contact properties, got "
                f"{str(payload)[:200]}; nothing was loaded."
            )
        return [ContactProperty.from_definition(definition) for definition in results]

    def property_batches(self, names: Sequence[str]) -> list[list[str]]:
        """Split property names into batches whose list URL stays under `max_url_length`.

        `requests` sends the comma between names as `%2C`, so each name costs its encoded length
        plus three characters.

        Args:
            names: The property names.

        Returns:
            Batches in the given order; at least one (possibly empty) batch.
        """
        budget = self.max_url_length - len(self.base_url) - len(CONTACTS_PATH) - 1 - LIST_QUERY_OVERHEAD
        batches: list[list[str]] = []
        current: list[str] = []
        used = 0
        for name in names:
            cost = len(quote_plus(name)) + (3 if current else 0)
            if current and used + cost > budget:
                batches.append(current)
                current, used, cost = [], 0, len(quote_plus(name))
            current.append(name)
            used += cost
        batches.append(current)
        return batches

    def latest_modified_ms(self) -> int | None:
        """The newest `lastmodifieddate` of any live contact (epoch ms), or None for an empty portal."""
        body = {
            "sorts": [{"propertyName": LAST_MODIFIED, "direction": "DESCENDING"}],
            "properties": [LAST_MODIFIED],
            "limit": 1,
        }
        payload = self._request("POST", SEARCH_PATH, json=body)
        results = payload.get("results") if isinstance(payload, dict) else None
        if not isinstance(results, list):
            raise MalformedPayloadError(
                f"hubspot: POST /{SEARCH_PATH} returned no `results` list ({str(payload)[:200]}); "
                "nothing was loaded."
            )
        return last_modified_ms(results[0]) if results else None

    def list_contacts(self, batches: Sequence[Sequence[str]]) -> Iterator[list[Contact]]:
        """Every live contact with the properties of all `batches`, page by page (ids ascending).

        The first batch drives the paging; the other batches are asked for the same page (same
        `after`) and merged into each contact. A contact that changed between those requests (its
        `lastmodifieddate` differs) is left out rather than loaded half old, half new: it is newer
        than the run's start, and the run's catch-up search loads it whole. A contact missing from
        a later batch's page (archived, or pushed out by a restored one) is read on its own.

        Args:
            batches: From `property_batches`.

        Yields:
            Pages of contacts (`id`, `properties`, `archived`...).
        """
        first, rest = list(batches[0]), [list(b) for b in batches[1:]]
        params = {"limit": LIST_PAGE_SIZE, "archived": "false", "properties": ",".join(first)}
        after: str | None = None
        for page in self._paginate(CONTACTS_PATH, params=params, paginator=list_paginator()):
            contacts = [dict(c) for c in page]
            if rest and contacts:
                contacts = self._complete_page(contacts, rest, after)
            yield contacts
            # The paginator has already written the next page's cursor into the request.
            next_after = (page.request.params or {}).get("after")
            after = str(next_after) if next_after is not None else None

    def search_modified_since(self, paginator: ModifiedSinceKeysetPaginator) -> Iterator[list[Contact]]:
        """Contacts modified at or after the paginator's lower bound, oldest first, page by page.

        Pages may repeat contacts at a page boundary; callers de-duplicate by id and timestamp.

        Args:
            paginator: Holds the bounds and the properties to return.

        Yields:
            Pages of contacts.
        """
        for page in self._paginate(SEARCH_PATH, method="POST", paginator=paginator):
            yield list(page)

    def archived_pages(self) -> Iterator[PageData[Contact]]:
        """Every archived contact (`archived=true`), ids only, page by page.

        Yields:
            Pages as dlt's `PageData` (a list that also carries the `response`, whose `Date`
            header tells the server's time).
        """
        params = {"limit": LIST_PAGE_SIZE, "archived": "true", "properties": "hs_object_id"}
        yield from self._paginate(CONTACTS_PATH, params=params, paginator=list_paginator())

    # ---- helpers -------------------------------------------------------------------------------

    def _complete_page(
        self, contacts: list[Contact], batches: list[list[str]], after: str | None
    ) -> list[Contact]:
        stamps = {contact_id_of(c): _stamp(c) for c in contacts}
        merged = {contact_id_of(c): c for c in contacts}
        for c in contacts:
            c["properties"] = dict(c.get("properties") or {})
        for batch in batches:
            params: dict[str, Any] = {
                "limit": LIST_PAGE_SIZE,
                "archived": "false",
                "properties": ",".join(batch),
            }
            if after is not None:
                params["after"] = after
            payload = self._request("GET", CONTACTS_PATH, params=params)
            results = payload.get("results") if isinstance(payload, dict) else None
            if not isinstance(results, list):
                raise MalformedPayloadError(
                    f"hubspot: GET /{CONTACTS_PATH} returned no `results` list "
                    f"({str(payload)[:200]}); nothing was loaded."
                )
            by_id = {contact_id_of(r): r for r in results}
            for contact_id in list(merged):
                other = by_id.get(contact_id) or self._read_one(contact_id, batch)
                if other is None or _stamp(other) != stamps[contact_id]:
                    # Archived or changed since the page's first batch was read: see list_contacts.
                    del merged[contact_id]
                    continue
                merged[contact_id]["properties"].update(other.get("properties") or {})
        return list(merged.values())

    def _read_one(self, contact_id: str, properties: Sequence[str]) -> Contact | None:
        path = f"{CONTACTS_PATH}/{quote(contact_id, safe='')}"
        params = {"archived": "false", "properties": ",".join(properties)}
        payload = self._request("GET", path, params=params, missing_ok=True)
        if not isinstance(payload, dict) or payload.get("id") is None:
            return None
        # A contact merged into another is answered with the survivor: not this contact.
        return payload if contact_id_of(payload) == contact_id else None

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        missing_ok: bool = False,
    ) -> Any:
        """One request (retried and paced by the session); the decoded JSON body.

        Returns:
            The body, or None for a 404 when `missing_ok`.
        """
        with self._errors(method, path):
            response = self.client.request(path, method=method, params=dict(params or {}), json=json)  # type: ignore[arg-type]
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise _http_error(method, path, response)
        return _json(method, path, response)

    def _paginate(
        self,
        path: str,
        *,
        method: str = "GET",
        params: dict[str, Any] | None = None,
        paginator: BasePaginator,
    ) -> Iterator[PageData[Contact]]:
        with self._errors(method, path):
            yield from self.client.paginate(
                path,
                method=method,  # type: ignore[arg-type]
                params=params,
                paginator=paginator,
                data_selector="results",
            )

    @contextlib.contextmanager
    def _errors(self, method: str, path: str) -> Iterator[None]:
        """Turn what `requests` raises into this project's errors (the HTTP retries are over)."""
        try:
            yield
        except PipelineError:
            raise
        except HTTPError as exc:
            if exc.response is None:
                raise UpstreamUnavailableError(f"hubspot: {method} /{path} failed: {exc}") from exc
            raise _http_error(method, path, exc.response) from exc
        except JSONDecodeError as exc:  # a page whose body is not JSON
            raise MalformedPayloadError(
                f"hubspot: {method} /{path} returned a body that is not valid JSON ({exc}); "
                "nothing was loaded."
            ) from exc
        except RequestException as exc:
            raise UpstreamUnavailableError(
                f"hubspot: {method} /{path} failed after retries ({type(exc).__name__}) - is the API "
                f"reachable from here? Check `{BASE_URL_SETTING}`."
            ) from exc


def _stamp(contact: Mapping[str, Any]) -> Any:
    raw = contact.get("properties")
    return (raw.get(LAST_MODIFIED) if isinstance(raw, Mapping) else None) or contact.get("updatedAt")


def _json(method: str, path: str, response: Response) -> Any:
    try:
        return response.json(parse_float=Decimal)
    except ValueError as exc:
        raise MalformedPayloadError(
            f"hubspot: {method} /{path} returned a body that is not valid JSON "
            f"(starts with {response.text[:40]!r}); nothing was loaded."
        ) from exc


def _hubspot_message(response: Response) -> str:
    """HubSpot's own `message` and `category` from an error body (they never echo the token)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    parts = [str(body.get(key)) for key in ("category", "message") if body.get(key)]
    return (": " + " - ".join(parts))[:300] if parts else ""


def _http_error(method: str, path: str, response: Response) -> PipelineError:
    """The error for an HTTP failure that dlt's retries did not cure (mapping in utils.http_errors)."""
    where = f"{method} /{path.split('?', 1)[0]}"
    return status_error(HTTP_SOURCE, response.status_code, where, _hubspot_message(response))
