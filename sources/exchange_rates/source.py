"""Exchange rates: the daily euro reference rates history from a Frankfurter-compatible API.

`GET {base_url}/{start}..{end}?base=EUR` answers `{"base", "start_date", "end_date", "rates":
{"YYYY-MM-DD": {"USD": 1.08, ...}}}` for the ECB working days in the range; the source turns that into
one row per (date, base, quote, rate) and appends only the days after the last loaded one.

How the API behaves, and what the source does about it:

- A range starts at the nearest working day *on or before* its start, so a range that starts on a
  weekend or holiday re-sends the previous working day. Within a run the source drops days it has
  already yielded; across runs dlt's incremental cursor drops days before the last loaded one and
  de-duplicates the rows of that day itself by (date, base, quote).
- A range with nothing published answers 404 `{"message": "not found"}`, not an empty object. Each
  run starts at the last loaded day (or `start_date`), which is always published, so a 404 on the
  first request means a wrong `base_url` or `base`; a 404 on a later chunk means the API has nothing
  newer, and ends the run.
- Time series contain retired currencies on the days they were published, and cross rates above
  5000 come as JSON integers: both are ordinary rows here, the rate always a float.
- Rates are parsed as decimals, not floats, so a rate that a double would change (more significant
  digits than it holds) is refused naming the day and currency, never loaded rounded.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import dlt
from dlt.sources import DltResource
from dlt.sources.helpers.requests import Client
from requests import HTTPError, RequestException, Response

from sources.exchange_rates.settings import (
    DEFAULT_BASE,
    DEFAULT_CHUNK_DAYS,
    DEFAULT_START_DATE,
    ISO_CODE_PATTERN,
    MAX_CHUNK_DAYS,
    MIN_CHUNK_DAYS,
    ROW_KEY,
    TABLE_NAME,
)
from utils.errors import ConfigurationError, MalformedPayloadError
from utils.http_errors import HttpSource, ensure_reachable, request_error
from utils.json_numbers import as_exact_float

_ISO_CODE = re.compile(ISO_CODE_PATTERN)
_DEFAULT_START = dt.date.fromisoformat(DEFAULT_START_DATE)
_NOT_LOADED = "nothing from this run was loaded"
# A public API: no credentials; a 401/403 means the URL points somewhere else.
HTTP_SOURCE = HttpSource(
    "exchange_rates",
    base_url_setting="sources.exchange_rates.base_url",
    other_settings=("sources.exchange_rates.base",),
    not_loaded=_NOT_LOADED,
    hints={404: "The API found no rates although the range starts at a published day."},
)

Row = dict[str, Any]


@dlt.source(section="exchange_rates", name="exchange_rates")
def exchange_rates_source(
    base_url: str = dlt.config.value,
    start_date: str = DEFAULT_START_DATE,
    base: str = DEFAULT_BASE,
    chunk_days: int = DEFAULT_CHUNK_DAYS,
) -> DltResource:
    """Extract the daily reference rates from a Frankfurter-compatible API, incrementally.

    Args:
        base_url: API root including the version, e.g. `https://api.frankfurter.dev/v1`
            (config key `sources.exchange_rates.base_url`).
        start_date: First day of the backfill, `YYYY-MM-DD` (`sources.exchange_rates.start_date`).
            Read on the first run only: later runs continue from the last loaded day.
        base: ISO code of the currency the rates are quoted against (`sources.exchange_rates.base`).
        chunk_days: Days of history per request while backfilling (`sources.exchange_rates.chunk_days`).

    Returns:
        The `exchange_rates` resource.

    Raises:
        ConfigurationError: A setting is not valid; the message names it.
    """
    return exchange_rates(
        base_url,
        base=_check_base(base),
        chunk_days=_check_chunk_days(chunk_days),
        date=dlt.sources.incremental(
            "date", initial_value=_parse_start_date(start_date), primary_key=ROW_KEY
        ),
    )


@dlt.resource(
    name=TABLE_NAME,
    write_disposition="append",
    columns={
        "date": {"data_type": "date", "nullable": False},
        "base": {"data_type": "text", "nullable": False},
        "quote": {"data_type": "text", "nullable": False},
        # Double, not decimal: published rates have at most 6 significant digits, which a binary64
        # float holds and prints back exactly; exact decimal arithmetic is for the models to cast to.
        "rate": {"data_type": "double", "nullable": False},
    },
)
def exchange_rates(
    base_url: str,
    base: str = DEFAULT_BASE,
    chunk_days: int = DEFAULT_CHUNK_DAYS,
    date: dlt.sources.incremental[dt.date] = dlt.sources.incremental(
        "date", initial_value=_DEFAULT_START, primary_key=ROW_KEY
    ),
) -> Iterator[list[Row]]:
    """Yield the rates from the last loaded day (or the start date) to the latest published day.

    Args:
        base_url: API root including the version.
        base: ISO code of the base currency.
        chunk_days: Days per request.
        date: dlt's incremental cursor on `date`; its start value is where this run begins.

    Yields:
        One batch of `{"date", "base", "quote", "rate"}` rows per request, in date order.

    Raises:
        UpstreamUnavailableError: The API kept failing after the HTTP client's retries (transient).
        UpstreamRequestError: The API refused a request, or has nothing from the first day asked for.
        MalformedPayloadError: An answer is not a time series, or a day holds a rate that is missing
            or not a positive number. The message names the day and currency.
    """
    root = base_url.rstrip("/")
    ensure_reachable(HTTP_SOURCE, root)
    client = Client()
    today = dt.date.today()
    chunk_start = _as_date(date.start_value)
    last_sent: dt.date | None = None
    first_request = True
    while True:
        chunk_end = chunk_start + dt.timedelta(days=chunk_days - 1)
        # The last chunk is open-ended, so the run reaches the API's latest day whatever our clock says.
        open_ended = chunk_end >= today
        url = f"{root}/{chunk_start.isoformat()}..{'' if open_ended else chunk_end.isoformat()}"
        payload = _get_json(client, url, base, not_found_is_empty=not first_request)
        first_request = False
        if payload is None:
            return  # nothing published from chunk_start on: the history ends before this chunk
        rows = parse_time_series(payload, url, base, after=last_sent)
        if rows:
            last_sent = rows[-1]["date"]
            yield rows
        if open_ended:
            return
        chunk_start = chunk_end + dt.timedelta(days=1)


def _get_json(client: Client, url: str, base: str, *, not_found_is_empty: bool) -> Any:
    # dlt's client retries 429 (honouring Retry-After), 5xx, timeouts and dropped connections with
    # exponential backoff; its settings come from the `runtime` config section.
    try:
        response: Response = client.get(url, params={"base": base})
    except RequestException as exc:
        status = exc.response.status_code if isinstance(exc, HTTPError) and exc.response is not None else 0
        if status == 404 and not_found_is_empty:
            return None
        raise request_error(HTTP_SOURCE, exc, f"GET {url}?base={base}") from exc
    try:
        # Decimal, not float: a rate a double would change is then seen, and refused (`_rate`).
        return response.json(parse_float=Decimal)
    except ValueError as exc:
        raise MalformedPayloadError(
            f"exchange_rates: GET {url} returned a body that is not valid JSON "
            f"(starts with {response.text[:40]!r}); {_NOT_LOADED}."
        ) from exc


def parse_time_series(payload: Any, url: str, base: str, *, after: dt.date | None = None) -> list[Row]:
    """Validate one time-series answer and turn it into rows.

    Args:
        payload: The decoded JSON body.
        url: Where it came from, for error messages.
        base: The base currency asked for; the answer must be quoted against it.
        after: Leave out this day and earlier ones (already yielded by this run).

    Returns:
        Rows `{"date": date, "base": "EUR", "quote": "USD", "rate": 1.08}` in (date, quote) order.

    Raises:
        MalformedPayloadError: The payload is not a time series for `base`, a day is not an ISO date
            or has no rates, or a rate is missing or not a positive finite number.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("rates"), dict):
        raise MalformedPayloadError(
            f"exchange_rates: GET {url} should return a time series with a `rates` object, got "
            f"{_describe(payload)}; {_NOT_LOADED}."
        )
    if payload.get("base") != base:
        raise MalformedPayloadError(
            f"exchange_rates: GET {url} returned rates against {payload.get('base')!r}, not {base!r}; "
            f"{_NOT_LOADED}."
        )
    days: list[tuple[dt.date, Any]] = []
    for day_text, day_rates in payload["rates"].items():
        try:
            day = dt.date.fromisoformat(day_text)
        except ValueError:
            raise MalformedPayloadError(
                f"exchange_rates: GET {url} has a day {day_text!r} that is not a YYYY-MM-DD date; "
                f"{_NOT_LOADED}."
            ) from None
        days.append((day, day_rates))
    rows: list[Row] = []
    for day, day_rates in sorted(days, key=lambda item: item[0]):
        if after is not None and day <= after:
            continue
        if not isinstance(day_rates, dict) or not day_rates:
            raise MalformedPayloadError(
                f"exchange_rates: {day} from GET {url} has no rates ({_describe(day_rates)}); {_NOT_LOADED}."
            )
        for quote, value in sorted(day_rates.items()):
            if not _ISO_CODE.fullmatch(quote):
                raise MalformedPayloadError(
                    f"exchange_rates: {day} from GET {url} has a rate for {quote!r}, which is not an "
                    f"ISO 4217 code; {_NOT_LOADED}."
                )
            rows.append({"date": day, "base": base, "quote": quote, "rate": _rate(value, day, quote, url)})
    return rows


def _rate(value: Any, day: dt.date, quote: str, url: str) -> float:
    # bool is an int in Python, and JSON true is no rate.
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        rate = float(value)
        if math.isfinite(rate) and rate > 0:
            # A float came from a caller that parsed it already; a Decimal or an integer must print
            # back the same from the double the column stores, or it would load changed.
            if isinstance(value, float) or as_exact_float(Decimal(value)) is not None:
                return rate
            raise MalformedPayloadError(
                f"exchange_rates: the {quote} rate on {day} from GET {url} is {value}, which the double "
                f"column {TABLE_NAME}.rate cannot hold as sent (a double keeps 15 to 17 significant "
                f"digits); {_NOT_LOADED}. Report it upstream; if rates that precise are right, the "
                "column must become a decimal (sources/exchange_rates)."
            )
    shown = str(value) if isinstance(value, Decimal) else repr(value)
    what = "missing (null)" if value is None else f"{shown}, not a positive number"
    raise MalformedPayloadError(
        f"exchange_rates: the {quote} rate on {day} from GET {url} is {what}; {_NOT_LOADED}. "
        "Report it upstream or wait for the API to correct the day, then run again."
    )


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def _as_date(value: Any) -> dt.date:
    # The cursor comes back from dlt's state as a date; a datetime would also order correctly but
    # would put a time into the URL.
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def _parse_start_date(text: str | dt.date) -> dt.date:
    if isinstance(text, dt.date):
        return _as_date(text)
    try:
        return dt.date.fromisoformat(str(text).strip())
    except ValueError:
        raise ConfigurationError(
            f"exchange_rates: `sources.exchange_rates.start_date` is {text!r}; use a YYYY-MM-DD date "
            f"such as {DEFAULT_START_DATE}."
        ) from None


def _check_base(base: str) -> str:
    code = str(base).strip().upper()
    if not _ISO_CODE.fullmatch(code):
        raise ConfigurationError(
            f"exchange_rates: `sources.exchange_rates.base` is {base!r}; use an ISO 4217 code such as "
            f"{DEFAULT_BASE}."
        )
    return code


def _check_chunk_days(chunk_days: int) -> int:
    if isinstance(chunk_days, bool) or not isinstance(chunk_days, int):
        chunk_days_text = repr(chunk_days)
    elif MIN_CHUNK_DAYS <= chunk_days <= MAX_CHUNK_DAYS:
        return chunk_days
    else:
        chunk_days_text = str(chunk_days)
    raise ConfigurationError(
        f"exchange_rates: `sources.exchange_rates.chunk_days` is {chunk_days_text}; use a whole number "
        f"of days from {MIN_CHUNK_DAYS} to {MAX_CHUNK_DAYS} (default {DEFAULT_CHUNK_DAYS}, a year)."
    )
