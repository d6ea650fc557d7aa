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

Hooks for tests: `publish_through()` moves `today`; `republish()`, `corrupt()` and `withhold()`
change, break or remove single values (`clear_overrides()` undoes them); `inject_fault()` queues
errors, 429s with `Retry-After`, slow answers, invalid JSON and dropped connections; `requests`
records every answer.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import datetime as dt
import json
import logging
import math
import random
import re
import socket
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qs, urlsplit

logger = logging.getLogger(__name__)

FIRST_DAY = dt.date(1999, 1, 4)
"""The first day the ECB published euro reference rates."""

FaultKind = Literal["error", "rate_limit", "slow", "malformed", "disconnect"]
FAULT_KINDS: tuple[FaultKind, ...] = ("error", "rate_limit", "slow", "malformed", "disconnect")

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


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server answered.

    Attributes:
        method: HTTP method, e.g. `GET`.
        path: Path without the query string, e.g. `/v1/2024-01-01..`.
        query: Raw query string, e.g. `base=USD&symbols=EUR` (empty if none).
        status: HTTP status sent; 0 when a `disconnect` fault dropped the connection instead.
        timestamp: When the answer was decided, in seconds since the epoch (`time.time()`).
    """

    method: str
    path: str
    query: str
    status: int
    timestamp: float


@dataclass
class _Fault:
    kind: FaultKind
    remaining: int
    path_prefix: str
    status: int
    retry_after: float
    delay: float


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


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


def _json_body(payload: object) -> bytes:
    # Compact and UTF-8, like the real service's Oj encoder ("Icelandic Króna", not "\u00f3").
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _message(status: int, message: str) -> _Response:
    return _Response(status, _json_body({"message": message}))


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    protocol_version = "HTTP/1.1"  # keep-alive, so clients with sessions reuse connections
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm and
    # delayed ACKs add about 40 ms to every answer on a kept-alive connection.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_GET(self) -> None:
        self.server.app.handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        # Tests read `FrankfurterServer.requests` instead of a noisy stderr access log.
        return


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: FrankfurterServer) -> None:
        super().__init__(address, _Handler)
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        # Keep-alive connections would otherwise hold handler threads after stop().
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (or stop() closing sockets) are normal here, not worth a traceback.
        logger.debug("frankfurter sandbox: connection from %s ended abruptly", client_address)


class FrankfurterServer:
    """A Frankfurter v1 compatible API serving deterministic ECB-like rates on loopback.

    Use it as a context manager (or call `start()`/`stop()`); `base_url` is the API root to give to
    clients, e.g. `http://127.0.0.1:54321/v1`.

    Attributes:
        currencies: Code to English name, served by `/v1/currencies` sorted by code. By default the
            currencies published on the latest working day up to `today`, plus EUR. Tests may mutate
            it; it does not decide which rates are served (`coverage` does).
        coverage: Code to publication periods; a currency's rates are served on the working days its
            periods cover. Defaults to `DEFAULT_COVERAGE`. Tests may mutate it, or use
            `add_currency()`.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, today: dt.date | None = None) -> None:
        """Prepare the server; nothing listens until `start()`.

        Args:
            host: Interface to bind; keep the loopback default.
            port: Port to bind; 0 lets the OS choose a free one.
            today: Last day with published rates; None follows the real current date.
        """
        self._host = host
        self._port = port
        self._today = today
        self._lock = threading.RLock()
        self._calendar = _CALENDAR
        self._republished: dict[dt.date, dict[str, float]] = {}
        self._corrupted: dict[dt.date, dict[str, object]] = {}
        self._withheld: dict[dt.date, set[str]] = {}
        self._faults: list[_Fault] = []
        self._requests: list[RecordedRequest] = []
        self._server: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self.coverage: dict[str, tuple[Period, ...]] = dict(DEFAULT_COVERAGE)
        self.currencies: dict[str, str] = self._published_names(self.today)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind the port and serve in a background thread.

        Returns:
            The server itself, so `server = FrankfurterServer().start()` works.

        Raises:
            RuntimeError: The server is already running.
        """
        if self._server is not None:
            raise RuntimeError("FrankfurterServer is already running")
        self._server = _HttpServer((self._host, self._port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="frankfurter-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and release the port. Safe to call twice."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port.

        Raises:
            RuntimeError: The server has not been started.
        """
        if self._server is None:
            raise RuntimeError("FrankfurterServer is not running; call start() first")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """API root including the version, e.g. `http://127.0.0.1:54321/v1`."""
        return f"http://{self._host}:{self.port}/v1"

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

    # -- faults ----------------------------------------------------------------------------------

    def inject_fault(
        self,
        kind: FaultKind,
        *,
        times: int = 1,
        path_prefix: str = "/v1",
        status: int = 503,
        retry_after: float = 1.0,
        delay: float = 2.0,
    ) -> None:
        """Make the next `times` matching requests fail in the given way.

        Faults are queued and consumed in the order they were injected; each request takes at most
        one, the first whose `path_prefix` matches its path.

        Args:
            kind: `error` answers HTTP `status` with a JSON message; `rate_limit` answers 429 with
                `Retry-After` set to `retry_after` rounded up to whole seconds; `slow` waits `delay`
                seconds, then answers normally; `malformed` answers 200 with the normal body cut in
                half (invalid JSON); `disconnect` closes the connection without answering.
            times: How many requests it affects.
            path_prefix: Only requests whose path (without the query) starts with this.
            status: HTTP status of an `error` fault.
            retry_after: Seconds announced by a `rate_limit` fault.
            delay: Seconds a `slow` fault waits.

        Raises:
            ValueError: Unknown kind or non-positive `times`.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults.append(_Fault(kind, times, path_prefix, status, retry_after, delay))

    def clear_faults(self) -> None:
        """Drop every fault not consumed yet."""
        with self._lock:
            self._faults.clear()

    def pending_faults(self) -> int:
        """Count the faulty answers still queued (the sum of their remaining `times`).

        Returns:
            How many more requests will be affected.
        """
        with self._lock:
            return sum(fault.remaining for fault in self._faults)

    # -- request log -----------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests answered so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def request_count(self, path_prefix: str = "") -> int:
        """Count the requests whose path starts with `path_prefix`.

        Args:
            path_prefix: e.g. `/v1/currencies`; empty counts everything.

        Returns:
            The number of recorded requests that match.
        """
        with self._lock:
            return sum(1 for request in self._requests if request.path.startswith(path_prefix))

    def reset_requests(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._requests.clear()

    # -- HTTP ------------------------------------------------------------------------------------

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        """Answer one request (called by the handler thread).

        Args:
            handler: The request handler whose request to answer.
        """
        parts = urlsplit(handler.path)
        fault = self._take_fault(parts.path)
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
        if fault is not None and fault.kind == "disconnect":
            self._record(handler.command, parts.path, parts.query, 0)
            handler.close_connection = True
            return
        response = self._fault_response(fault) if fault is not None else None
        if response is None:
            try:
                response = self._route(parts.path, parts.query)
            except Exception:
                logger.exception("frankfurter sandbox: failed to answer %s", handler.path)
                response = _message(500, "internal server error")
        if fault is not None and fault.kind == "malformed":
            response = _Response(200, response.body[: len(response.body) // 2])
        # Record before writing: a client may check the log as soon as it has the answer.
        self._record(handler.command, parts.path, parts.query, response.status)
        handler.send_response(response.status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(response.body)))
        if response.status == 200:
            handler.send_header("Cache-Control", "public, max-age=86400")
        for name, value in response.headers:
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(response.body)

    def _record(self, method: str, path: str, query: str, status: int) -> None:
        with self._lock:
            self._requests.append(RecordedRequest(method, path, query, status, time.time()))

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if path.startswith(fault.path_prefix):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    @staticmethod
    def _fault_response(fault: _Fault) -> _Response | None:
        if fault.kind == "error":
            try:
                phrase = HTTPStatus(fault.status).phrase
            except ValueError:
                phrase = "error"
            return _message(fault.status, phrase)
        if fault.kind == "rate_limit":
            # HTTP's Retry-After carries whole seconds; round up so clients never retry too early.
            seconds = max(0, math.ceil(fault.retry_after))
            return _Response(
                429,
                _json_body({"message": "Too Many Requests"}),
                (("Retry-After", str(seconds)),),
            )
        return None

    def _route(self, path: str, query: str) -> _Response:
        try:
            params = self._parse_params(query)
            if path == "/v1/currencies":
                return _Response(200, _json_body(dict(sorted(self.currencies.items()))))
            if path in ("/v1/latest", "/v1/current"):
                return self._single_day(self.today, params)
            if match := _SINGLE_DAY.fullmatch(path):
                return self._single_day(self._parse_date(match[1]), params)
            if match := _TIME_SERIES.fullmatch(path):
                start = self._parse_date(match[1])
                end = self._parse_date(match[2]) if match[2] else self.today
                return self._time_series(start, end, params)
        except _InvalidQueryError as exc:
            return _message(422, str(exc))
        return _message(404, "not found")

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

    def _single_day(self, day: dt.date, params: _Params) -> _Response:
        today = self.today
        if day > today:
            return _message(404, "not found")
        index = self._calendar.last_index_on_or_before(day)
        if index < 0:
            return _message(404, "not found")
        rates = self._rates(index, index, params)
        if not rates:
            return _message(404, "not found")
        ((date_text, day_rates),) = rates.items()
        return _Response(
            200,
            _json_body({"amount": params.amount, "base": params.base, "date": date_text, "rates": day_rates}),
        )

    def _time_series(self, start: dt.date, end: dt.date, params: _Params) -> _Response:
        today = self.today
        if start > today:
            return _message(404, "not found")
        # Like the real service: begin at the nearest working day on or before `start`.
        first = max(self._calendar.last_index_on_or_before(start), 0)
        last = self._calendar.last_index_on_or_before(min(end, today))
        rates = self._rates(first, last, params) if last >= first else {}
        if not rates:
            return _message(404, "not found")
        dates = list(rates)
        return _Response(
            200,
            _json_body(
                {
                    "amount": params.amount,
                    "base": params.base,
                    "start_date": dates[0],
                    "end_date": dates[-1],
                    "rates": rates,
                }
            ),
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
    with FrankfurterServer(port=args.port, today=args.today) as server:
        print(server.base_url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    _main()
