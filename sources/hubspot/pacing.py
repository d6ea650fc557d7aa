"""Pacing requests to HubSpot so its rate limits are respected before they are enforced.

HubSpot limits each private app to a number of requests per rolling window (100 or 190 per
10 seconds by tier) and tells the client where it stands on every response:
`X-HubSpot-RateLimit-Max`, `-Remaining` and `-Interval-Milliseconds`. Search has a separate,
lower per-second limit and its responses carry none of those headers.

`RollingWindowPacer` keeps the send times of our own requests and holds the next one back until
the window has room, learning the limit and the window from the headers; a `Remaining` of 0
(someone else spending the same quota) or a 429 blocks it too. `PacedAdapter` is a `requests`
transport adapter that passes every attempt - dlt's retries included - through the right pacer,
so the pacing also applies to requests made by dlt's `RESTClient`.

Retries have one owner: dlt's HTTP client (the `runtime` section: `request_max_attempts` and the
backoff). The adapter sends each attempt exactly once and never resends; a 429 only holds the
pacer back, so every other request waits too. One request is therefore sent at most
`request_max_attempts` times, whatever mix of 429s, 5xx and dropped connections it meets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter

from sources.hubspot.settings import RATE_WINDOW_SAFETY

logger = logging.getLogger(__name__)

LIMIT_HEADER = "X-HubSpot-RateLimit-Max"
REMAINING_HEADER = "X-HubSpot-RateLimit-Remaining"
INTERVAL_HEADER = "X-HubSpot-RateLimit-Interval-Milliseconds"


class RollingWindowPacer:
    """Spaces requests so that at most `limit` are sent in any rolling `interval_seconds`.

    Thread-safe. The clock and sleep functions are injectable for tests.

    Args:
        limit: Requests allowed per window (updated from `X-HubSpot-RateLimit-Max`).
        interval_seconds: Length of the window (updated from `-Interval-Milliseconds`).
        learn_from_headers: Whether responses' rate-limit headers update the limit and window.
        safety: Fraction of the window added to it, for the delay between sending a request
            and HubSpot counting it.
        clock: Monotonic clock in seconds.
        sleep: Function that waits a number of seconds.
    """

    def __init__(
        self,
        limit: int,
        interval_seconds: float,
        *,
        learn_from_headers: bool = True,
        safety: float = RATE_WINDOW_SAFETY,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit < 1 or interval_seconds <= 0:
            raise ValueError("the limit and the interval must be positive")
        self.limit = limit
        self.interval_seconds = interval_seconds
        self.learn_from_headers = learn_from_headers
        self.safety = safety
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()
        self._blocked_until = 0.0
        self.waited_seconds = 0.0
        self.requests_sent = 0
        self.rate_limited = 0

    @property
    def window(self) -> float:
        """The window our own send times are kept for: the interval plus the safety margin."""
        return self.interval_seconds * (1 + self.safety)

    def acquire(self) -> float:
        """Wait until a request may be sent, and count it as sent now.

        Returns:
            The seconds waited.
        """
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and self._sent[0] <= now - self.window:
                    self._sent.popleft()
                wait = self._blocked_until - now
                if len(self._sent) >= self.limit:
                    wait = max(wait, self._sent[0] + self.window - now)
                if wait <= 0:
                    self._sent.append(now)
                    self.requests_sent += 1
                    self.waited_seconds += waited
                    return waited
            # Sleep outside the lock so a 429 seen by another thread can still extend the wait;
            # the loop checks the window again before counting the request.
            self._sleep(wait)
            waited += wait

    def observe(self, status: int, headers: Mapping[str, str], *, default_retry_after: float) -> float:
        """Learn from a response: its rate-limit headers, and a 429's `Retry-After`.

        Args:
            status: The response's HTTP status.
            headers: Its headers (case-insensitive mapping).
            default_retry_after: Seconds to hold back after a 429 without `Retry-After`.

        Returns:
            Seconds every further request is held back (0 when nothing blocks).
        """
        now = self._clock()
        with self._lock:
            if self.learn_from_headers:
                self._learn(headers)
            hold = 0.0
            if status == 429:
                self.rate_limited += 1
                hold = _seconds(headers.get("Retry-After")) or default_retry_after
            elif _int(headers.get(REMAINING_HEADER)) == 0 and self.learn_from_headers:
                # HubSpot says the window is spent; our own log frees a slot when our oldest
                # request leaves the window, or (if the quota went elsewhere) one slot's time.
                oldest = self._sent[0] if self._sent else now
                hold = max(oldest + self.window - now, self.window / self.limit)
            if hold > 0:
                self._blocked_until = max(self._blocked_until, now + hold)
            return max(self._blocked_until - now, 0.0)

    def _learn(self, headers: Mapping[str, str]) -> None:
        limit = _int(headers.get(LIMIT_HEADER))
        interval_ms = _int(headers.get(INTERVAL_HEADER))
        if limit is not None and limit > 0:
            self.limit = limit
        if interval_ms is not None and interval_ms > 0:
            self.interval_seconds = interval_ms / 1000


class PacedAdapter(HTTPAdapter):
    """A `requests` adapter that sends every attempt through a pacer, exactly once.

    Search requests (`.../search`) go through `search_pacer`, all others through `pacer`. A 429
    holds the pacer back for `Retry-After` (or one search window, as search 429s carry none) and
    is returned to the caller: resending it is dlt's retry policy's job, not this adapter's, so
    a request is never retried by both (it was: up to 10 resends inside each of dlt's 5 attempts).

    Args:
        pacer: The pacer of the general limit.
        search_pacer: The pacer of the search limit.
        **kwargs: Passed to `HTTPAdapter`.
    """

    def __init__(self, pacer: RollingWindowPacer, search_pacer: RollingWindowPacer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pacer = pacer
        self.search_pacer = search_pacer

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        """Send `request` once its pacer allows, and let the pacer learn from the answer."""
        is_search = (request.path_url or "").split("?", 1)[0].rstrip("/").endswith("/search")
        pacer = self.search_pacer if is_search else self.pacer
        pacer.acquire()
        response = super().send(request, *args, **kwargs)
        hold = pacer.observe(
            response.status_code, response.headers, default_retry_after=self.search_pacer.interval_seconds
        )
        if response.status_code == 429:
            logger.warning(
                "HubSpot answered 429 to %s %s; every request is held back %.1f s (dlt's retry "
                "policy decides whether to send it again)",
                request.method,
                (request.path_url or "").split("?", 1)[0],
                hold,
            )
        return response


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def _seconds(value: str | None) -> float | None:
    """Parse `Retry-After` given in seconds; HubSpot never sends the HTTP-date form."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds > 0 else None
