"""A Frankfurter-compatible exchange-rate API on loopback, for tests and the local demo.

The real service (https://api.frankfurter.dev/v1) republishes the European Central Bank's euro
foreign exchange reference rates. `FrankfurterServer` answers the same v1 routes from a synthetic but
deterministic history, and lets tests change the data and inject faults while it runs.

Routes (all under `/v1`):

- `GET /v1/currencies` - `{"AUD": "Australian Dollar", ...}`, sorted by code.
- `GET /v1/{start}..{end}` and `GET /v1/{start}..` - a time series
  `{"amount", "base", "start_date", "end_date", "rates": {"YYYY-MM-DD": {"AUD": 1.6, ...}}}`.
- `GET /v1/{date}` and `GET /v1/latest` - one day `{"amount", "base", "date", "rates"}`.
- Query parameters `base` (alias `from`, default EUR), `symbols` (alias `to`, comma-separated) and
  `amount`.

Behaviour copied from the real service's v1 code (lineofflight/frankfurter), because clients must
cope with it:

- Only ECB working days carry rates: Monday to Friday except the TARGET closing days (1 January,
  Good Friday, Easter Monday, 1 May, 25 and 26 December). History starts on 1999-01-04 and ends on
  `today`.
- A time series starts at the nearest working day *on or before* the requested start, so a range
  that starts on a weekend or holiday also returns the previous working day.
- A request with nothing to return (a range or day after `today`, a day before 1999-01-04, an unknown
  base, only unknown symbols) answers 404 `{"message": "not found"}` - not an empty `rates` object.
- Dates that look like dates but do not exist (`2024-02-30`) answer 422 `{"message": "invalid
  date"}`; anything else unknown answers 404 `{"message": "not found"}`.
- Rates against EUR are served as published (5 significant digits here, pegged currencies at their
  official rate). Cross rates (`base` other than EUR) and amounts other than 1 are rounded like the
  real service: 2 to 6 decimals depending on size, and values above 5000 to whole numbers, which JSON
  carries as integers. Days on which the base currency was not published are left out.
- Time series contain retired currencies (CYP, EEK, HRK, RUB, ...) on the days they were published,
  although `/currencies` lists only the currencies published on the latest day. BGN is one of them:
  Bulgaria adopted the euro on 2026-01-01 and the ECB's last BGN rate is from 2025-12-31.

Which currency is published when is an approximate, documented table (`DEFAULT_COVERAGE`); the rates
are a seeded, mean-reverting random walk per currency around a realistic level, so the same request
gives the same numbers on every run and changing `today` never changes earlier days. Unlike the ECB,
which publishes at about 16:00 CET, `today`'s rates are available all day.

Hooks for tests: `publish_through()` moves `today` and `publish_next_working_day()` (the sandbox's
`simulate_activity()`) moves it to the next working day; `republish()`, `corrupt()` and `withhold()`
change, break or remove single values (`clear_overrides()` undoes them); `inject_fault()` queues
errors, 429s with `Retry-After`, slow answers, invalid JSON and dropped connections; `requests`
records every answer.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import json
import math
import random
import re
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from werkzeug.wrappers import Request, Response

from sandbox.base import HttpStandIn, serve_until_signalled

FIRST_DAY = dt.date(1999, 1, 4)
"""The first day the ECB published euro reference rates."""

# English names as the real service returns them (it takes them from Ruby's `money` gem).
CURRENCY_NAMES: dict[str, str] = {
    "AUD": "Australian Dollar",
    "BGN": "Bulgarian Lev",
    "BRL": "Brazilian Real",
    "CAD": "Canadian Dollar",
    "CHF": "Swiss Franc",
    "CNY": "Chinese Renminbi Yuan",
    "CYP": "Cypriot Pound",
    "CZK": "Czech Koruna",
    "DKK": "Danish Krone",
    "EEK": "Estonian Kroon",
    "EUR": "Euro",
    "GBP": "British Pound",
    "HKD": "Hong Kong Dollar",
    "HRK": "Croatian Kuna",
    "HUF": "Hungarian Forint",
    "IDR": "Indonesian Rupiah",
    "ILS": "Israeli New Sheqel",
    "INR": "Indian Rupee",
    "ISK": "Icelandic Króna",
    "JPY": "Japanese Yen",
    "KRW": "South Korean Won",
    "LTL": "Lithuanian Litas",
    "LVL": "Latvian Lats",
    "MTL": "Maltese Lira",
    "MXN": "Mexican Peso",
    "MYR": "Malaysian Ringgit",
    "NOK": "Norwegian Krone",
    "NZD": "New Zealand Dollar",
    "PHP": "Philippine Peso",
    "PLN": "Polish Złoty",
    "ROL": "Romanian Leu (old)",
    "RON": "Romanian Leu",
    "RUB": "Russian Ruble",
    "SEK": "Swedish Krona",
    "SGD": "Singapore Dollar",
    "SIT": "Slovenian Tolar",
    "SKK": "Slovak Koruna",
    "THB": "Thai Baht",
    "TRL": "Turkish Lira (old)",
    "TRY": "Turkish Lira",
    "USD": "United States Dollar",
    "ZAR": "South African Rand",
}

Period = tuple[dt.date, dt.date | None]
"""First and last day (inclusive; None = still published) of one publication period."""

_D = dt.date
_FROM_START: tuple[Period, ...] = ((FIRST_DAY, None),)

# When the ECB published each currency: approximate (from the ECB's history as remembered, not
# checked day by day) but enough to exercise currencies appearing, disappearing and coming back.
DEFAULT_COVERAGE: dict[str, tuple[Period, ...]] = {
    **{
        code: _FROM_START
        for code in (
            *("AUD", "CAD", "CHF", "CZK", "DKK", "GBP", "HKD", "HUF", "JPY"),
            *("KRW", "NOK", "NZD", "PLN", "SEK", "SGD", "USD", "ZAR"),
        )
    },
    # Iceland's rate was suspended during its 2008 banking crisis and resumed in 2018.
    "ISK": ((FIRST_DAY, _D(2008, 12, 3)), (_D(2018, 1, 2), None)),
    "BGN": ((_D(2000, 7, 19), _D(2025, 12, 31)),),
    "TRY": ((_D(2005, 1, 3), None),),
    **{code: ((_D(2005, 4, 1), None),) for code in ("CNY", "IDR", "MYR", "PHP", "THB")},
    "RON": ((_D(2005, 7, 1), None),),
    **{code: ((_D(2008, 1, 2), None),) for code in ("BRL", "INR", "MXN")},
    "ILS": ((_D(2011, 1, 3), None),),
    # Retired: the country adopted the euro, redenominated, or the ECB suspended the rate.
    "SIT": ((FIRST_DAY, _D(2006, 12, 29)),),
    "CYP": ((FIRST_DAY, _D(2007, 12, 31)),),
    "MTL": ((FIRST_DAY, _D(2007, 12, 31)),),
    "SKK": ((FIRST_DAY, _D(2008, 12, 31)),),
    "EEK": ((FIRST_DAY, _D(2010, 12, 31)),),
    "LVL": ((FIRST_DAY, _D(2013, 12, 31)),),
    "LTL": ((FIRST_DAY, _D(2014, 12, 31)),),
    "TRL": ((FIRST_DAY, _D(2004, 12, 31)),),
    "ROL": ((FIRST_DAY, _D(2005, 6, 30)),),
    "HRK": ((_D(2005, 4, 1), _D(2022, 12, 30)),),
    "RUB": ((_D(2005, 4, 1), _D(2022, 3, 1)),),
}


@dataclass(frozen=True)
class _Profile:
    # Units per euro on 1999-01-04 (or the official rate of a peg).
    level: float
    # Standard deviation of the daily log change; 0 means a fixed peg.
    volatility: float = 0.005
    # Yearly log drift of the level the walk reverts to (high-inflation currencies drift up).
    drift: float = 0.0


_PROFILES: dict[str, _Profile] = {
    "AUD": _Profile(1.65, 0.006),
    "BGN": _Profile(1.9558, 0.0),
    "BRL": _Profile(1.88, 0.009, 0.04),
    "CAD": _Profile(1.55, 0.005),
    "CHF": _Profile(1.60, 0.004, -0.018),
    "CNY": _Profile(8.2, 0.004),
    "CYP": _Profile(0.585274, 0.0),
    "CZK": _Profile(36.0, 0.003, -0.01),
    "DKK": _Profile(7.45, 0.0003),
    "EEK": _Profile(15.6466, 0.0),
    "GBP": _Profile(0.78, 0.004),
    "HKD": _Profile(8.8, 0.005),
    "HRK": _Profile(7.4, 0.002),
    "HUF": _Profile(250.0, 0.005, 0.015),
    "IDR": _Profile(9000.0, 0.007, 0.025),
    "ILS": _Profile(4.4, 0.005),
    "INR": _Profile(45.0, 0.005, 0.025),
    "ISK": _Profile(140.0, 0.006),
    "JPY": _Profile(130.0, 0.006, 0.006),
    "KRW": _Profile(1350.0, 0.006),
    "LTL": _Profile(3.4528, 0.0),
    "LVL": _Profile(0.70, 0.001),
    "MTL": _Profile(0.4293, 0.0005),
    "MXN": _Profile(11.0, 0.008, 0.02),
    "MYR": _Profile(4.6, 0.004),
    "NOK": _Profile(9.5, 0.005),
    "NZD": _Profile(1.75, 0.006),
    "PHP": _Profile(58.0, 0.005),
    "PLN": _Profile(4.3, 0.005),
    "ROL": _Profile(17000.0, 0.004, 0.13),
    "RON": _Profile(4.6, 0.002),
    "RUB": _Profile(25.0, 0.008, 0.05),
    "SEK": _Profile(10.0, 0.004),
    "SGD": _Profile(1.55, 0.004),
    "SIT": _Profile(190.0, 0.001, 0.03),
    "SKK": _Profile(43.0, 0.003, -0.04),
    "THB": _Profile(38.0, 0.004),
    "TRL": _Profile(320000.0, 0.006, 0.3),
    "TRY": _Profile(0.75, 0.006, 0.15),
    "USD": _Profile(1.15, 0.005),
    "ZAR": _Profile(7.0, 0.008, 0.035),
}
_DEFAULT_PROFILE = _Profile(1.0)

# Daily pull back towards the trend: small enough that rates wander by several per cent for months.
_MEAN_REVERSION = 0.002

_DATE_SHAPE = r"\d{4}-\d{2}-\d{2}"
_SINGLE_DAY = re.compile(rf"/v1/({_DATE_SHAPE})")
_TIME_SERIES = re.compile(rf"/v1/({_DATE_SHAPE})\.\.({_DATE_SHAPE})?")


class _InvalidQueryError(ValueError):
    """A request the real service answers with 422 and this message."""


def _easter_sunday(year: int) -> dt.date:
    # Anonymous Gregorian algorithm (Meeus/Jones/Butcher).
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l = (32 + 2 * e + 2 * i - h - k) % 7  # noqa: E741 - the algorithm's own name
    m = (a + 11 * h + 22 * l) // 451
    month, day = divmod(h + l - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


def is_working_day(day: dt.date) -> bool:
    """Tell whether the ECB publishes reference rates on `day` (ignoring the 1999 start).

    Args:
        day: Any date.

    Returns:
        True from Monday to Friday unless it is a TARGET closing day: 1 January, Good Friday,
        Easter Monday, 1 May, 25 or 26 December.
    """
    if day.weekday() >= 5:
        return False
    if (day.month, day.day) in {(1, 1), (5, 1), (12, 25), (12, 26)}:
        return False
    easter = _easter_sunday(day.year)
    return day not in (easter - dt.timedelta(days=2), easter + dt.timedelta(days=1))


class _Calendar:
    """ECB working days from 1999-01-04, extended on demand; index 0 is 1999-01-04."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.days: list[dt.date] = []
        self._ordinals: list[int] = []
        self._until = FIRST_DAY - dt.timedelta(days=1)

    def extend_through(self, last: dt.date) -> None:
        with self._lock:
            day = self._until + dt.timedelta(days=1)
            while day <= last:
                if is_working_day(day):
                    self.days.append(day)
                    self._ordinals.append(day.toordinal())
                day += dt.timedelta(days=1)
            self._until = max(self._until, last)

    def last_index_on_or_before(self, day: dt.date) -> int:
        """Index of the last working day <= day; -1 if none."""
        self.extend_through(day)
        return bisect.bisect_right(self._ordinals, day.toordinal()) - 1

    def first_index_on_or_after(self, day: dt.date) -> int:
        """Index of the first working day >= day (may equal len(days) if not generated yet)."""
        self.extend_through(day)
        return bisect.bisect_left(self._ordinals, day.toordinal())


class _Walk:
    """Deterministic rates of one currency, one per working-day index, computed on demand."""

    def __init__(self, code: str, calendar: _Calendar) -> None:
        self._profile = _PROFILES.get(code, _DEFAULT_PROFILE)
        # crc32, not hash(): str hashes change between interpreter runs.
        self._rng = random.Random(zlib.crc32(code.encode()))
        self._calendar = calendar
        self._deviation = 0.0
        self._lock = threading.Lock()
        self.values: list[float] = []

    def extend_to(self, count: int) -> list[float]:
        """Make sure `values` has at least `count` entries (the calendar must have as many days)."""
        profile = self._profile
        days = self._calendar.days
        # The lock keeps the walk's steps in order when several requests extend it at once;
        # readers only index below `count`, which appends never disturb.
        with self._lock:
            for index in range(len(self.values), count):
                if profile.volatility == 0.0:
                    self.values.append(profile.level)
                    continue
                self._deviation = self._deviation * (1.0 - _MEAN_REVERSION) + self._rng.gauss(
                    0.0, profile.volatility
                )
                years = (days[index] - FIRST_DAY).days / 365.25
                value = profile.level * math.exp(profile.drift * years + self._deviation)
                self.values.append(float(f"{value:.5g}"))
        return self.values


# The calendar and the walks depend on nothing but the currency code, so every server in the
# process shares them: only the first one pays for generating 1999 to today.
_CALENDAR = _Calendar()
_WALKS: dict[str, _Walk] = {}
_WALKS_LOCK = threading.Lock()


def _walk(code: str) -> _Walk:
    with _WALKS_LOCK:
        walk = _WALKS.get(code)
        if walk is None:
            walk = _WALKS[code] = _Walk(code, _CALENDAR)
        return walk


def round_like_frankfurter(value: float) -> float | int:
    """Round a converted rate the way the real service's v1 `Roundable` does.

    Args:
        value: A rate after conversion to another base or amount.

    Returns:
        A whole number (int) above 5000, else a float with 2 (above 80), 3 (above 20), 4 (above 1),
        5 (above 0.0001) or 6 decimals.
    """
    if value > 5000:
        # Ruby's Float#round rounds halves away from zero; Python's round() would round to even.
        return math.floor(value + 0.5)
    for threshold, decimals in ((80, 2), (20, 3), (1, 4), (0.0001, 5)):
        if value > threshold:
            return float(f"{value:.{decimals}f}")
    return float(f"{value:.6f}")


class FrankfurterServer(HttpStandIn):
    """A Frankfurter v1 compatible API serving deterministic ECB-like rates on loopback.

    Use it as a context manager (or call `start()`/`stop()`); `base_url` is the API root to give to
    clients, e.g. `http://127.0.0.1:54321/v1`. Faults and the request log come from `HttpStandIn`.

    Args:
        host: Interface to bind; keep the loopback default.
        port: Port to bind; 0 lets the OS choose a free one.
        today: Last day with published rates; None follows the real current date.

    Attributes:
        currencies: Code to English name, served by `/v1/currencies` sorted by code. By default the
            currencies published on the latest working day up to `today`, plus EUR. Tests may mutate
            it; it does not decide which rates are served (`coverage` does).
        coverage: Code to publication periods; a currency's rates are served on the working days its
            periods cover. Defaults to `DEFAULT_COVERAGE`. Tests may mutate it, or use
            `add_currency()`.
    """

    base_path = "/v1"
    json_content_type = "application/json; charset=utf-8"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, today: dt.date | None = None) -> None:
        super().__init__(host=host, port=port)
        self._today = today
        self._lock = threading.RLock()
        self._calendar = _CALENDAR
        self._republished: dict[dt.date, dict[str, float]] = {}
        self._corrupted: dict[dt.date, dict[str, object]] = {}
        self._withheld: dict[dt.date, set[str]] = {}
        self.coverage: dict[str, tuple[Period, ...]] = dict(DEFAULT_COVERAGE)
        self.currencies: dict[str, str] = self._published_names(self.today)

    # -- data ------------------------------------------------------------------------------------

    @property
    def today(self) -> dt.date:
        """The last day whose rates are published (working day or not)."""
        with self._lock:
            return self._today if self._today is not None else dt.date.today()

    def publish_through(self, day: dt.date) -> None:
        """Make every working day up to and including `day` published (or unpublish later ones).

        Args:
            day: The new `today`. `currencies` is left as it is.
        """
        with self._lock:
            self._today = day

    def publish_next_working_day(self) -> dt.date:
        """Publish the first ECB working day after `today`, as the next business day does upstream.

        Weekends and TARGET closing days in between are skipped, as they carry no rates: after a
        Friday comes Monday, after Maundy Thursday the Tuesday after Easter.

        Returns:
            The day now published (the new `today`). `currencies` is left as it is.
        """
        with self._lock:
            after = self.today + dt.timedelta(days=1)
            # Never more than four closed days in a row (Good Friday to Easter Monday), so the
            # first working day is always within a fortnight.
            day = self.working_days(after, after + dt.timedelta(days=14))[0]
            self._today = day
        return day

    def simulate_activity(self) -> None:
        """A business day passes: the next ECB working day's rates are published."""
        self.publish_next_working_day()

    def working_days(self, start: dt.date, end: dt.date) -> list[dt.date]:
        """List the ECB working days from `start` to `end` inclusive (none before 1999-01-04).

        Args:
            start: First day to consider.
            end: Last day to consider.

        Returns:
            The working days in order, whether or not they are published yet.
        """
        first = self._calendar.first_index_on_or_after(start)
        last = self._calendar.last_index_on_or_before(end)
        return self._calendar.days[first : last + 1]

    def add_currency(self, code: str, name: str, *, since: dt.date) -> None:
        """Start publishing a currency from `since` and list it in `/currencies`.

        Its rates are a deterministic walk around 1 unit per euro unless the code has a built-in
        profile.

        Args:
            code: ISO 4217 code, e.g. `XAU`.
            name: English name for `/currencies`.
            since: First day its rates are published.
        """
        with self._lock:
            self.coverage[code] = ((since, None),)
            self.currencies[code] = name
            self.currencies = dict(sorted(self.currencies.items()))

    def rate(self, day: dt.date, currency: str) -> float | None:
        """The published value of one currency against EUR, ignoring overrides.

        Args:
            day: A working day.
            currency: ISO code.

        Returns:
            Units of `currency` per euro, or None if it is not published on `day` (not a working
            day, before its coverage, or after `today`).
        """
        index = self._calendar.last_index_on_or_before(day)
        if (
            index < 0
            or self._calendar.days[index] != day
            or day > self.today
            or not self._covers(self.coverage.get(currency, ()), day)
        ):
            return None
        return _walk(currency).extend_to(index + 1)[index]

    def republish(self, day: dt.date, currency: str, rate: float) -> None:
        """Serve `rate` instead of the generated value, as if the ECB had corrected it.

        Cross rates are computed from it too. It shows only once `day` is published (`today`), and
        it adds the currency on that day if it is not normally published then.

        Args:
            day: A working day.
            currency: ISO code.
            rate: Units of `currency` per euro.
        """
        day = self._require_working_day(day)
        with self._lock:
            self._clear_override(day, currency)
            self._republished.setdefault(day, {})[currency] = float(rate)

    def corrupt(self, day: dt.date, currency: str, value: object) -> None:
        """Serve a malformed `value` (e.g. None, "n/a", -1) for one currency on one day.

        The value is placed in the answer verbatim, whatever the base: it is not converted, and a
        cross rate for that currency is replaced by it. Use `withhold()` to drop the key instead.

        Args:
            day: A working day.
            currency: ISO code (need not be published that day).
            value: Anything JSON can encode.
        """
        day = self._require_working_day(day)
        json.dumps(value)  # fail here, not in the request thread, if it cannot be served
        with self._lock:
            self._clear_override(day, currency)
            self._corrupted.setdefault(day, {})[currency] = value

    def withhold(self, day: dt.date, currency: str) -> None:
        """Leave one currency's key out of the answer on one day (a gap in the data).

        Withholding the base currency of a request drops that day from cross-rate answers, as the
        real service does.

        Args:
            day: A working day.
            currency: ISO code.
        """
        day = self._require_working_day(day)
        with self._lock:
            self._clear_override(day, currency)
            self._withheld.setdefault(day, set()).add(currency)

    def clear_overrides(self) -> None:
        """Undo every `republish()`, `corrupt()` and `withhold()`."""
        with self._lock:
            self._republished.clear()
            self._corrupted.clear()
            self._withheld.clear()

    # -- HTTP ------------------------------------------------------------------------------------

    def answer(self, request: Request) -> Response:
        """Answer a GET as the real service does; successful answers may be cached for a day."""
        response = self._route(request.path, request.query_string.decode("latin-1"))
        if response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=86400"
        return response

    def _route(self, path: str, query: str) -> Response:
        try:
            params = self._parse_params(query)
            if path == "/v1/currencies":
                return self.json(dict(sorted(self.currencies.items())))
            if path in ("/v1/latest", "/v1/current"):
                return self._single_day(self.today, params)
            if match := _SINGLE_DAY.fullmatch(path):
                return self._single_day(self._parse_date(match[1]), params)
            if match := _TIME_SERIES.fullmatch(path):
                start = self._parse_date(match[1])
                end = self._parse_date(match[2]) if match[2] else self.today
                return self._time_series(start, end, params)
        except _InvalidQueryError as exc:
            return self.error(422, str(exc))
        return self.error(404, "not found")

    @staticmethod
    def _parse_date(text: str) -> dt.date:
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            raise _InvalidQueryError("invalid date") from None

    @staticmethod
    def _parse_params(query: str) -> _Params:
        values = {key: items[-1] for key, items in parse_qs(query, keep_blank_values=True).items()}
        base_text = values.get("from", values.get("base"))
        symbols_text = values.get("to", values.get("symbols"))
        amount = 1.0
        if "amount" in values:
            try:
                amount = float(values["amount"])
            except ValueError:
                amount = 0.0
            if not amount > 0 or math.isinf(amount):
                raise _InvalidQueryError("invalid amount")
        base = base_text.upper() if base_text is not None else "EUR"
        symbols = tuple(symbols_text.upper().split(",")) if symbols_text is not None else None
        if symbols == (base,):
            raise _InvalidQueryError("bad currency pair")
        return _Params(amount=amount, base=base, symbols=symbols)

    def _single_day(self, day: dt.date, params: _Params) -> Response:
        today = self.today
        if day > today:
            return self.error(404, "not found")
        index = self._calendar.last_index_on_or_before(day)
        if index < 0:
            return self.error(404, "not found")
        rates = self._rates(index, index, params)
        if not rates:
            return self.error(404, "not found")
        ((date_text, day_rates),) = rates.items()
        return self.json(
            {"amount": params.amount, "base": params.base, "date": date_text, "rates": day_rates}
        )

    def _time_series(self, start: dt.date, end: dt.date, params: _Params) -> Response:
        today = self.today
        if start > today:
            return self.error(404, "not found")
        # Like the real service: begin at the nearest working day on or before `start`.
        first = max(self._calendar.last_index_on_or_before(start), 0)
        last = self._calendar.last_index_on_or_before(min(end, today))
        rates = self._rates(first, last, params) if last >= first else {}
        if not rates:
            return self.error(404, "not found")
        dates = list(rates)
        return self.json(
            {
                "amount": params.amount,
                "base": params.base,
                "start_date": dates[0],
                "end_date": dates[-1],
                "rates": rates,
            }
        )

    def _rates(self, first: int, last: int, params: _Params) -> dict[str, dict[str, object]]:
        """Rates for working-day indexes first..last inclusive, keyed by ISO date."""
        days = self._calendar.days[first : last + 1]
        with self._lock:
            coverage = dict(self.coverage)
            republished = {day: dict(v) for day, v in self._republished.items()}
            corrupted = {day: dict(v) for day, v in self._corrupted.items()}
            withheld = {day: set(v) for day, v in self._withheld.items()}
        wanted = (
            None if params.symbols is None else {*params.symbols, params.base} - {"EUR"}
        )  # EUR is never a quote against itself
        codes = sorted(code for code in coverage if wanted is None or code in wanted)

        # Pass 1: the EUR-based tables, one dict per day, keys inserted in code order.
        tables: list[dict[str, float]] = [{} for _ in days]
        for code in codes:
            values: list[float] | None = None
            for period_start, period_end in coverage[code]:
                lo = max(self._calendar.first_index_on_or_after(period_start), first)
                hi = last
                if period_end is not None:
                    hi = min(self._calendar.last_index_on_or_before(period_end), last)
                if hi < lo:
                    continue
                if values is None:
                    values = _walk(code).extend_to(last + 1)
                for index in range(lo, hi + 1):
                    tables[index - first][code] = values[index]

        # Pass 2: overrides on the published days in range.
        touched: set[int] = set()
        for day in set(republished) | set(withheld):
            position = self._position(day, days)
            if position is None:
                continue
            table = tables[position]
            for code, rate in republished.get(day, {}).items():
                if wanted is None or code in wanted:
                    table[code] = rate
            for code in withheld.get(day, set()):
                table.pop(code, None)
            touched.add(position)
        for position in touched:
            tables[position] = dict(sorted(tables[position].items()))

        # Pass 3: amount and base, exactly as the real service orders the arithmetic.
        result: dict[str, dict[str, object]] = {}
        rebase = params.base != "EUR"
        must_round = rebase or params.amount != 1.0
        for day, table in zip(days, tables, strict=True):
            rates: dict[str, Any] = table
            if must_round:
                rates = {code: round_like_frankfurter(params.amount * rate) for code, rate in table.items()}
            if rebase:
                if params.symbols is None or "EUR" in params.symbols:
                    rates["EUR"] = params.amount
                divisor = rates.pop(params.base, None)
                if divisor is None or not rates:
                    continue
                rates = {
                    code: round_like_frankfurter(params.amount * rate / divisor)
                    for code, rate in sorted(rates.items())
                }
            if not rates:
                continue
            result[day.isoformat()] = rates

        # Pass 4: corrupt values replace whatever would have been served.
        for day, values_by_code in corrupted.items():
            day_rates = result.get(day.isoformat())
            if day_rates is None and not rebase and self._position(day, days) is not None:
                day_rates = result.setdefault(day.isoformat(), {})
            if day_rates is None:
                continue
            for code, value in values_by_code.items():
                if code != params.base and (params.symbols is None or code in params.symbols):
                    day_rates[code] = value
            result[day.isoformat()] = dict(sorted(day_rates.items()))
        if corrupted:
            result = dict(sorted(result.items()))
        return result

    # -- helpers ---------------------------------------------------------------------------------

    def _position(self, day: dt.date, days: list[dt.date]) -> int | None:
        if not days or not days[0] <= day <= days[-1]:
            return None
        position = bisect.bisect_left(days, day)
        return position if days[position] == day else None

    @staticmethod
    def _covers(periods: Iterable[Period], day: dt.date) -> bool:
        return any(start <= day and (end is None or day <= end) for start, end in periods)

    def _published_names(self, today: dt.date) -> dict[str, str]:
        index = self._calendar.last_index_on_or_before(today)
        latest = self._calendar.days[index] if index >= 0 else FIRST_DAY
        codes = {code for code, periods in self.coverage.items() if self._covers(periods, latest)}
        return {code: CURRENCY_NAMES.get(code, code) for code in sorted(codes | {"EUR"})}

    @staticmethod
    def _require_working_day(day: dt.date) -> dt.date:
        if day < FIRST_DAY or not is_working_day(day):
            raise ValueError(f"{day} is not an ECB working day; no rates are published on it")
        return day

    def _clear_override(self, day: dt.date, currency: str) -> None:
        self._republished.get(day, {}).pop(currency, None)
        self._corrupted.get(day, {}).pop(currency, None)
        self._withheld.get(day, set()).discard(currency)


@dataclass(frozen=True)
class _Params:
    amount: float
    base: str
    symbols: tuple[str, ...] | None


def _main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.frankfurter",
        description="Serve a Frankfurter-compatible exchange-rate API on loopback until Ctrl-C.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    parser.add_argument(
        "--today",
        type=dt.date.fromisoformat,
        default=None,
        help="last published day, YYYY-MM-DD (default: the real current date)",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    server = FrankfurterServer(port=args.port, today=args.today)
    serve_until_signalled(server, lambda running: print(running.base_url, flush=True))


if __name__ == "__main__":
    _main()
