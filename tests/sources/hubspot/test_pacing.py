"""The rate-limit pacer on a simulated clock: never over the limit, close to it, obeys HubSpot."""

from __future__ import annotations

import pytest

from sources.hubspot.pacing import RollingWindowPacer
from tests.sources.hubspot.portal import SimulatedClock, most_in_any_window


def pacer(
    limit: int = 10, interval: float = 1.0, **options: bool
) -> tuple[RollingWindowPacer, SimulatedClock]:
    clock = SimulatedClock()
    return RollingWindowPacer(limit, interval, clock=clock, sleep=clock.sleep, **options), clock


def send_times(paced: RollingWindowPacer, clock: SimulatedClock, n: int, latency: float = 0.0) -> list[float]:
    times = []
    for _ in range(n):
        paced.acquire()
        times.append(clock.now)
        clock.now += latency
    return times


@pytest.mark.parametrize("latency", [0.0, 0.003, 0.05])
def test_never_more_than_the_limit_in_any_window_and_close_to_it(latency: float) -> None:
    paced, clock = pacer(limit=10, interval=1.0)
    times = send_times(paced, clock, 500, latency)

    assert most_in_any_window(times, 1.0) <= 10
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert rate >= 0.95 * 10  # the safety margin costs 2.5 %


def test_learns_the_limit_and_window_from_hubspots_headers() -> None:
    paced, clock = pacer(limit=100, interval=10.0)
    paced.acquire()
    paced.observe(
        200,
        {"X-HubSpot-RateLimit-Max": "5", "X-HubSpot-RateLimit-Interval-Milliseconds": "2000"},
        default_retry_after=1.0,
    )
    times = [clock.now, *send_times(paced, clock, 20)]

    assert (paced.limit, paced.interval_seconds) == (5, 2.0)
    assert most_in_any_window(times, 2.0) <= 5


def test_search_pacer_ignores_headers() -> None:
    paced, _ = pacer(limit=4, interval=1.0, learn_from_headers=False)
    paced.observe(200, {"X-HubSpot-RateLimit-Max": "500"}, default_retry_after=1.0)
    assert paced.limit == 4


def test_remaining_zero_holds_back_even_when_our_own_count_has_room() -> None:
    # Another client spent the quota: HubSpot says nothing is left although we sent one request.
    paced, clock = pacer(limit=10, interval=1.0)
    paced.acquire()
    start = clock.now
    held = paced.observe(
        200,
        {"X-HubSpot-RateLimit-Max": "10", "X-HubSpot-RateLimit-Remaining": "0"},
        default_retry_after=1.0,
    )
    paced.acquire()
    assert held == pytest.approx(1.025)
    assert clock.now - start == pytest.approx(1.025)


def test_a_429_waits_for_retry_after() -> None:
    paced, clock = pacer(limit=100, interval=10.0)
    paced.acquire()
    start = clock.now
    paced.observe(429, {"Retry-After": "3"}, default_retry_after=1.0)
    waited = paced.acquire()

    assert waited == pytest.approx(3.0)
    assert clock.now - start == pytest.approx(3.0)
    assert paced.rate_limited == 1


def test_a_429_without_retry_after_waits_the_default() -> None:
    paced, _ = pacer(limit=5, interval=1.0, learn_from_headers=False)
    paced.acquire()
    paced.observe(429, {}, default_retry_after=1.0)
    assert paced.acquire() == pytest.approx(1.0)


@pytest.mark.parametrize(("limit", "interval"), [(0, 1.0), (1, 0.0)])
def test_rejects_a_non_positive_limit(limit: int, interval: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        RollingWindowPacer(limit, interval)
