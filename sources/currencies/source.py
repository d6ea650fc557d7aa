"""Currencies: the ISO 4217 currency list from a Frankfurter-compatible API.

`GET {base_url}/currencies` answers `{"EUR": "Euro", ...}`; the source turns that into one row per
currency. The list is reference data, so every run replaces the table as a whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import dlt
from dlt.sources import DltResource
from dlt.sources.helpers.requests import Client
from requests import RequestException

from sources.currencies.settings import CURRENCIES_PATH, ISO_CODE_PATTERN, MAX_NAME_LENGTH
from utils.errors import MalformedPayloadError
from utils.http_errors import HttpSource, ensure_reachable, request_error

_ISO_CODE = re.compile(ISO_CODE_PATTERN)
# A public API: no credentials; a 401/403 means the URL points somewhere else.
HTTP_SOURCE = HttpSource("currencies", base_url_setting="sources.currencies.base_url")


@dlt.source(section="currencies", name="currencies")
def currencies_source(base_url: str = dlt.config.value) -> DltResource:
    """Extract the currency list from a Frankfurter-compatible API.

    Args:
        base_url: API root including the version, e.g. `https://api.frankfurter.dev/v1`
            (config key `sources.currencies.base_url`).

    Returns:
        The `currencies` resource.
    """
    return currencies(base_url)


@dlt.resource(
    name="currencies",
    write_disposition="replace",
    primary_key="code",
    columns={
        "code": {"data_type": "text", "nullable": False},
        "name": {"data_type": "text", "nullable": False},
    },
)
def currencies(base_url: str) -> Iterator[list[dict[str, str]]]:
    """Yield one row per currency: its ISO code and English name.

    Args:
        base_url: API root including the version.

    Yields:
        The whole list as one batch of `{"code", "name"}` rows, sorted by code.

    Raises:
        UpstreamUnavailableError: The API kept failing after the HTTP client's retries (transient).
        UpstreamRequestError: The API refused the request (4xx): retrying will not help.
        UpstreamUnreachableError: The host refused the connection, does not resolve or fails TLS.
        ConfigurationError: The API asked for credentials (401/403): the URL is wrong.
        MalformedPayloadError: The answer is not a JSON object of ISO code to name.
    """
    url = f"{base_url.rstrip('/')}/{CURRENCIES_PATH}"
    payload = _get_json(url)
    yield parse_currencies(payload, url)


def _get_json(url: str) -> Any:
    # dlt's client retries 429 (honouring Retry-After), 5xx, timeouts and dropped connections with
    # exponential backoff; its settings come from the `runtime` config section (request_max_attempts...).
    ensure_reachable(HTTP_SOURCE, url)
    client = Client()
    try:
        response = client.get(url)
    except RequestException as exc:
        raise request_error(HTTP_SOURCE, exc, f"GET {url}") from exc
    try:
        return response.json()
    except ValueError as exc:
        raise MalformedPayloadError(
            f"currencies: GET {url} returned a body that is not valid JSON "
            f"(starts with {response.text[:40]!r}); nothing was loaded."
        ) from exc


def parse_currencies(payload: Any, url: str) -> list[dict[str, str]]:
    """Validate the `/currencies` payload and turn it into rows.

    Args:
        payload: The decoded JSON body.
        url: Where it came from, for error messages.

    Returns:
        Rows `{"code": "EUR", "name": "Euro"}` sorted by code.

    Raises:
        MalformedPayloadError: The payload is empty, not an object, or holds a record that is not an
            ISO code mapped to a non-empty name. The message names the record.
    """
    if not isinstance(payload, dict) or not payload:
        raise MalformedPayloadError(
            f"currencies: GET {url} should return a non-empty JSON object of ISO code to name, "
            f"got {type(payload).__name__}; nothing was loaded."
        )
    rows = []
    for code, name in sorted(payload.items()):
        if not _ISO_CODE.fullmatch(code):
            raise MalformedPayloadError(
                f"currencies: record {code!r} from {url} is not an ISO 4217 code; nothing was loaded."
            )
        # A NUL character is refused: dlt's INSERT writer for DuckDB would drop it without a word.
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH or "\x00" in name:
            raise MalformedPayloadError(
                f"currencies: record {code!r} from {url} has an invalid name {name!r}; nothing was loaded."
            )
        rows.append({"code": code, "name": name.strip()})
    return rows
