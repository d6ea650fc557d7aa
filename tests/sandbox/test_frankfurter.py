"""Contract tests for the Frankfurter-compatible sandbox API."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from sandbox.frankfurter import FrankfurterServer, is_working_day, round_like_frankfurter

FRIDAY = dt.date(2024, 6, 14)
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@pytest.fixture
def server() -> Iterator[FrankfurterServer]:
    with FrankfurterServer(today=FRIDAY) as running:
        yield running


def get(server: FrankfurterServer, path: str, **params: str) -> requests.Response:
    return requests.get(f"{server.base_url}{path}", params=params, timeout=10)


def rates_of(server: FrankfurterServer, path: str, **params: str) -> dict[str, dict[str, Any]]:
    response = get(server, path, **params)
    assert response.status_code == 200, response.text
    rates: dict[str, dict[str, Any]] = response.json()["rates"]
    return rates


# -- contract ------------------------------------------------------------------------------------


def test_base_url_is_loopback_with_a_real_port(server: FrankfurterServer) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", server.base_url)
    assert server.port > 0


def test_currencies_are_the_ecb_list_sorted_with_names(server: FrankfurterServer) -> None:
    response = get(server, "/currencies")

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert list(body) == sorted(body)
    assert all(re.fullmatch(r"[A-Z]{3}", code) and name for code, name in body.items())
    assert body["EUR"] == "Euro"
    assert body["USD"] == "United States Dollar"
    assert body["ISK"] == "Icelandic Króna"
    # Today is 2024-06-14: BGN was still published then, retired currencies are not listed.
    assert "BGN" in body
    assert not {"HRK", "RUB", "CYP"} & set(body)
    assert len(body) == 31


def test_currencies_follow_the_latest_published_day() -> None:
    # Bulgaria adopted the euro on 2026-01-01; the ECB's last BGN rate is from 2025-12-31.
    with FrankfurterServer(today=dt.date(2026, 3, 2)) as later:
        body = get(later, "/currencies").json()

    assert "BGN" not in body
    assert len(body) == 30


def test_currencies_can_be_changed_by_tests(server: FrankfurterServer) -> None:
    server.currencies["XAU"] = "Gold (one troy ounce)"
    del server.currencies["USD"]

    body = get(server, "/currencies").json()

    assert body["XAU"] == "Gold (one troy ounce)"
    assert "USD" not in body


def test_time_series_shape(server: FrankfurterServer) -> None:
    response = get(server, "/2024-06-03..2024-06-07")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"amount", "base", "start_date", "end_date", "rates"}
    assert body["amount"] == 1.0
    assert body["base"] == "EUR"
    assert body["start_date"] == "2024-06-03"
    assert body["end_date"] == "2024-06-07"
    assert list(body["rates"]) == ["2024-06-03", "2024-06-04", "2024-06-05", "2024-06-06", "2024-06-07"]
    day = body["rates"]["2024-06-03"]
    assert list(day) == sorted(day)
    assert "EUR" not in day
    assert set(day) == set(server.currencies) - {"EUR"}
    assert all(isinstance(rate, float) and rate > 0 for rate in day.values())
    # Plausible magnitudes, not just any positive number.
    assert 0.8 < day["USD"] < 1.6
    assert 80 < day["JPY"] < 200
    assert day["BGN"] == 1.9558  # pegged


def test_open_ended_time_series_runs_to_today(server: FrankfurterServer) -> None:
    body = get(server, "/2024-06-10..").json()

    assert body["start_date"] == "2024-06-10"
    assert body["end_date"] == FRIDAY.isoformat()
    assert len(body["rates"]) == 5


def test_only_ecb_working_days_carry_rates(server: FrankfurterServer) -> None:
    dates = [dt.date.fromisoformat(day) for day in rates_of(server, "/2023-12-20..2024-05-10")]

    assert all(day.weekday() < 5 for day in dates)
    for closed in ("2023-12-25", "2023-12-26", "2024-01-01", "2024-03-29", "2024-04-01", "2024-05-01"):
        assert dt.date.fromisoformat(closed) not in dates
    assert dt.date(2023, 12, 27) in dates
    assert dt.date(2024, 4, 2) in dates


def test_working_day_calendar_matches_target_closing_days() -> None:
    days_2024 = [dt.date(2024, 1, 1) + dt.timedelta(days=n) for n in range(366)]

    # 262 weekdays minus 6 TARGET closing days that fell on weekdays in 2024.
    assert sum(is_working_day(day) for day in days_2024) == 256
    assert not is_working_day(dt.date(2025, 4, 18))  # Good Friday 2025
    assert not is_working_day(dt.date(2025, 4, 21))  # Easter Monday 2025
    assert is_working_day(dt.date(2025, 4, 22))


def test_history_starts_on_1999_01_04(server: FrankfurterServer) -> None:
    body = get(server, "/1998-12-01..1999-01-08").json()

    assert body["start_date"] == "1999-01-04"
    assert list(body["rates"]) == ["1999-01-04", "1999-01-05", "1999-01-06", "1999-01-07", "1999-01-08"]
    assert get(server, "/1998-12-31").status_code == 404


def test_range_starting_on_a_closed_day_includes_the_previous_working_day(
    server: FrankfurterServer,
) -> None:
    # Like the real service: the series starts at the nearest working day on or before the start.
    body = get(server, "/2024-06-08..2024-06-11").json()

    assert body["start_date"] == "2024-06-07"
    assert list(body["rates"]) == ["2024-06-07", "2024-06-10", "2024-06-11"]


def test_single_day_falls_back_to_the_previous_working_day(server: FrankfurterServer) -> None:
    body = get(server, "/2024-06-09").json()  # a Sunday

    assert body["date"] == "2024-06-07"
    assert body["base"] == "EUR"
    assert body["rates"] == rates_of(server, "/2024-06-07..2024-06-07")["2024-06-07"]


def test_latest_is_the_last_published_working_day() -> None:
    with FrankfurterServer(today=dt.date(2024, 6, 16)) as sunday:
        body = get(sunday, "/latest").json()

    assert body["date"] == "2024-06-14"


# (currency, day, published that day?) around the edges of the coverage table.
COVERAGE_EDGES = [
    ("USD", "1999-01-04", True),
    ("RON", "2005-06-30", False),
    ("RON", "2005-07-01", True),
    ("ROL", "2005-06-30", True),
    ("ROL", "2005-07-01", False),
    ("TRY", "2004-12-31", False),
    ("TRY", "2005-01-03", True),
    ("BGN", "1999-01-04", False),
    ("BGN", "2000-07-19", True),
    ("CNY", "2005-03-31", False),
    ("CNY", "2005-04-01", True),
    ("BRL", "2007-12-31", False),
    ("BRL", "2008-01-02", True),
    # Iceland: published, suspended from December 2008, back in 2018.
    ("ISK", "2008-12-03", True),
    ("ISK", "2008-12-04", False),
    ("ISK", "2015-06-01", False),
    ("ISK", "2018-01-02", True),
    # Retired currencies appear in the history although /currencies does not list them.
    ("HRK", "2022-12-30", True),
    ("HRK", "2023-01-02", False),
    ("CYP", "2007-12-31", True),
    ("CYP", "2008-01-02", False),
]


def test_currencies_appear_and_disappear_over_time(server: FrankfurterServer) -> None:
    rates = rates_of(server, "/1999-01-04..")

    observed = [(code, day, code in rates[day]) for code, day, _ in COVERAGE_EDGES]

    assert observed == COVERAGE_EDGES


def test_added_currency_is_served_from_its_first_day(server: FrankfurterServer) -> None:
    server.add_currency("XAU", "Gold", since=dt.date(2024, 6, 12))

    rates = rates_of(server, "/2024-06-10..")

    assert "XAU" not in rates["2024-06-11"]
    assert rates["2024-06-12"]["XAU"] > 0
    assert get(server, "/currencies").json()["XAU"] == "Gold"


def test_rates_are_deterministic_across_servers_and_publication(server: FrankfurterServer) -> None:
    first = get(server, "/2020-01-01..2020-03-31").content
    with FrankfurterServer(today=dt.date(2026, 11, 2)) as other:
        # Rates are generated on demand: asking for more history must not change earlier days.
        assert get(other, "/1999-01-01..").status_code == 200
        second = get(other, "/2020-01-01..2020-03-31").content

    assert first == second
    assert server.rate(dt.date(2020, 1, 2), "USD") == json.loads(first)["rates"]["2020-01-02"]["USD"]


def test_rates_move_from_day_to_day(server: FrankfurterServer) -> None:
    usd = [day["USD"] for day in rates_of(server, "/2024-01-01..2024-03-31").values()]

    assert len(set(usd)) > 30


def test_publish_through_makes_new_days_appear(server: FrankfurterServer) -> None:
    before = get(server, "/2024-06-10..").json()
    assert get(server, "/2024-06-17..").status_code == 404

    server.publish_through(dt.date(2024, 6, 18))
    after = get(server, "/2024-06-10..").json()

    assert before["end_date"] == "2024-06-14"
    assert after["end_date"] == "2024-06-18"
    assert list(after["rates"])[-2:] == ["2024-06-17", "2024-06-18"]
    # Days already published do not change.
    assert {day: after["rates"][day] for day in before["rates"]} == before["rates"]
    assert get(server, "/latest").json()["date"] == "2024-06-18"


def test_simulated_activity_publishes_the_next_working_day_only(server: FrankfurterServer) -> None:
    before = rates_of(server, "/2024-06-14..")

    server.simulate_activity()  # a business day passes: Friday 14 June -> Monday 17 June
    after = rates_of(server, "/2024-06-14..")

    assert server.today == dt.date(2024, 6, 17)
    assert list(before) == ["2024-06-14"]
    assert list(after) == ["2024-06-14", "2024-06-17"]  # the weekend carries no rates
    assert after["2024-06-14"] == before["2024-06-14"]
    assert set(after["2024-06-17"]) == set(before["2024-06-14"])
    assert get(server, "/latest").json()["date"] == "2024-06-17"


@pytest.mark.parametrize(
    ("today", "next_day"),
    [
        (dt.date(2024, 3, 28), dt.date(2024, 4, 2)),  # Maundy Thursday: Good Friday, Easter Monday shut
        (dt.date(2024, 12, 24), dt.date(2024, 12, 27)),  # 25 and 26 December are TARGET holidays
        (dt.date(2024, 12, 31), dt.date(2025, 1, 2)),  # so is 1 January
        (dt.date(2024, 4, 30), dt.date(2024, 5, 2)),  # and 1 May
        (dt.date(2024, 6, 15), dt.date(2024, 6, 17)),  # from a Saturday: the next Monday
    ],
)
def test_the_next_working_day_skips_ecb_closing_days(today: dt.date, next_day: dt.date) -> None:
    with FrankfurterServer(today=today) as server:
        assert server.publish_next_working_day() == next_day
        assert server.today == next_day
        assert get(server, "/latest").json()["date"] == next_day.isoformat()
        days = [dt.date.fromisoformat(day) for day in rates_of(server, f"/{today}..")]
        # The range starts at the last working day on or before `today`, then jumps to the new day.
        assert days[-1] == next_day
        assert days[:-1] == ([today] if is_working_day(today) else [days[0]])
        assert days[0] <= today


def test_full_history_comes_in_one_answer(server: FrankfurterServer) -> None:
    # How fast the stand-in serves it is a benchmark's business (bench/exchange_rates.py), not a test's.
    server.publish_through(dt.date(2026, 11, 20))
    response = get(server, "/1999-01-04..")

    assert response.status_code == 200
    days = sorted(response.json()["rates"])
    assert len(days) > 7000
    assert days[0] == "1999-01-04"
    assert days[-1] == "2026-11-20"


# -- base, symbols, amount -----------------------------------------------------------------------


def test_cross_rates_leave_the_base_out(server: FrankfurterServer) -> None:
    eur = rates_of(server, "/2024-06-03..2024-06-07")
    usd = get(server, "/2024-06-03..2024-06-07", base="USD").json()

    assert usd["base"] == "USD"
    for day, rates in usd["rates"].items():
        assert "USD" not in rates
        assert rates["EUR"] == round_like_frankfurter(1 / eur[day]["USD"])
        expected_jpy = eur[day]["JPY"] / eur[day]["USD"]
        assert rates["JPY"] == pytest.approx(expected_jpy, abs=0.006)
        # Above 5000 the real service rounds to a whole number, which JSON carries as an integer.
        assert isinstance(rates["IDR"], int)


def test_symbols_filter_the_quotes(server: FrankfurterServer) -> None:
    eur = rates_of(server, "/2024-06-03..2024-06-07", symbols="USD,GBP")
    usd = rates_of(server, "/2024-06-03..2024-06-07", base="USD", symbols="EUR,JPY")

    assert all(set(day) == {"GBP", "USD"} for day in eur.values())
    assert all(set(day) == {"EUR", "JPY"} for day in usd.values())


def test_amount_multiplies_and_rounds(server: FrankfurterServer) -> None:
    one = get(server, "/2024-06-07", symbols="USD").json()
    hundred = get(server, "/2024-06-07", symbols="USD", amount="100").json()

    assert hundred["amount"] == 100.0
    assert hundred["rates"]["USD"] == round_like_frankfurter(100 * one["rates"]["USD"])


def test_unknown_base_or_only_unknown_symbols_is_not_found(server: FrankfurterServer) -> None:
    assert get(server, "/2024-06-03..", base="XXX").status_code == 404
    assert get(server, "/2024-06-03..", symbols="XXX").json() == {"message": "not found"}


def test_base_missing_on_some_days_drops_those_days(server: FrankfurterServer) -> None:
    body = get(server, "/2005-06-28..2005-07-05", base="RON").json()

    assert body["start_date"] == "2005-07-01"


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/2024-02-30..", "/2024-13-01", "/2024-06-03..2024-06-31"])
def test_impossible_dates_are_422(server: FrankfurterServer, path: str) -> None:
    response = get(server, path)

    assert response.status_code == 422
    assert response.json() == {"message": "invalid date"}


@pytest.mark.parametrize(
    ("params", "message"),
    [({"amount": "0"}, "invalid amount"), ({"base": "USD", "symbols": "USD"}, "bad currency pair")],
)
def test_bad_queries_are_422(server: FrankfurterServer, params: dict[str, str], message: str) -> None:
    response = get(server, "/latest", **params)

    assert response.status_code == 422
    assert response.json() == {"message": message}


@pytest.mark.parametrize("path", ["/nope", "/2024-1-1..", "/currencies/USD", "/2030-01-01..", "/2030-01-01"])
def test_unknown_paths_and_future_dates_are_404(server: FrankfurterServer, path: str) -> None:
    response = get(server, path)

    assert response.status_code == 404
    assert response.json() == {"message": "not found"}


def test_paths_outside_v1_are_404(server: FrankfurterServer) -> None:
    response = requests.get(server.base_url.removesuffix("/v1") + "/currencies", timeout=10)

    assert response.status_code == 404


# -- data manipulation ---------------------------------------------------------------------------


def test_republish_overrides_a_value_and_feeds_cross_rates(server: FrankfurterServer) -> None:
    day = dt.date(2024, 6, 12)
    generated = server.rate(day, "USD")
    server.republish(day, "USD", 2.0)

    eur = rates_of(server, "/2024-06-11..2024-06-13")
    usd = get(server, "/2024-06-12", base="USD", symbols="EUR").json()

    assert eur["2024-06-12"]["USD"] == 2.0
    assert eur["2024-06-11"]["USD"] != 2.0
    assert usd["rates"] == {"EUR": 0.5}
    assert server.rate(day, "USD") == generated  # the generated value is kept underneath


def test_corrupt_serves_malformed_values_verbatim(server: FrankfurterServer) -> None:
    server.corrupt(dt.date(2024, 6, 12), "USD", None)
    server.corrupt(dt.date(2024, 6, 13), "GBP", "n/a")

    rates = rates_of(server, "/2024-06-11..2024-06-13")

    assert rates["2024-06-12"]["USD"] is None
    assert rates["2024-06-13"]["GBP"] == "n/a"
    assert isinstance(rates["2024-06-11"]["USD"], float)


def test_withhold_drops_the_key(server: FrankfurterServer) -> None:
    server.withhold(dt.date(2024, 6, 12), "USD")

    rates = rates_of(server, "/2024-06-11..2024-06-13")
    usd_base = rates_of(server, "/2024-06-11..2024-06-13", base="USD")

    assert "USD" not in rates["2024-06-12"]
    assert "USD" in rates["2024-06-13"]
    assert list(usd_base) == ["2024-06-11", "2024-06-13"]


def test_clear_overrides_restores_generated_values(server: FrankfurterServer) -> None:
    clean = rates_of(server, "/2024-06-10..")
    server.republish(dt.date(2024, 6, 10), "USD", 9.0)
    server.corrupt(dt.date(2024, 6, 11), "USD", "bad")
    server.withhold(dt.date(2024, 6, 12), "JPY")
    assert rates_of(server, "/2024-06-10..") != clean

    server.clear_overrides()

    assert rates_of(server, "/2024-06-10..") == clean


def test_overrides_on_closed_days_are_refused(server: FrankfurterServer) -> None:
    with pytest.raises(ValueError, match="not an ECB working day"):
        server.republish(dt.date(2024, 6, 15), "USD", 1.0)
    with pytest.raises(ValueError, match="not an ECB working day"):
        server.withhold(dt.date(2024, 12, 25), "USD")


# -- faults --------------------------------------------------------------------------------------


def test_error_fault_answers_the_status_then_recovers(server: FrankfurterServer) -> None:
    server.inject_fault("error", times=2, status=502)

    statuses = [get(server, "/currencies").status_code for _ in range(3)]

    assert statuses == [502, 502, 200]
    assert server.pending_faults() == 0


def test_error_fault_body_is_json(server: FrankfurterServer) -> None:
    server.inject_fault("error")

    response = get(server, "/latest")

    assert response.status_code == 503
    assert response.json() == {"message": "Service Unavailable"}


def test_rate_limit_fault_sends_retry_after_in_whole_seconds(server: FrankfurterServer) -> None:
    server.inject_fault("rate_limit", retry_after=1.5)

    response = get(server, "/2024-06-10..")

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert get(server, "/2024-06-10..").status_code == 200


def test_slow_fault_delays_the_normal_answer(server: FrankfurterServer) -> None:
    server.inject_fault("slow", delay=0.3)

    started = time.perf_counter()
    response = get(server, "/currencies")

    assert time.perf_counter() - started >= 0.3
    assert response.status_code == 200
    assert response.json()["EUR"] == "Euro"


def test_slow_fault_trips_a_client_timeout(server: FrankfurterServer) -> None:
    server.inject_fault("slow", delay=0.5)

    with pytest.raises(requests.Timeout):
        requests.get(f"{server.base_url}/currencies", timeout=0.1)


def test_malformed_fault_answers_200_with_invalid_json(server: FrankfurterServer) -> None:
    server.inject_fault("malformed")

    response = get(server, "/2024-06-10..")

    assert response.status_code == 200
    with pytest.raises(ValueError, match=r"."):
        response.json()
    assert get(server, "/2024-06-10..").json()["end_date"] == "2024-06-14"


def test_disconnect_fault_drops_the_connection(server: FrankfurterServer) -> None:
    server.inject_fault("disconnect")

    with pytest.raises(requests.ConnectionError):
        get(server, "/currencies")
    assert get(server, "/currencies").status_code == 200
    assert [request.status for request in server.requests] == [0, 200]


def test_faults_only_hit_matching_paths_and_are_consumed_in_order(
    server: FrankfurterServer,
) -> None:
    server.inject_fault("error", path_prefix="/v1/currencies", status=500)
    server.inject_fault("rate_limit", retry_after=0)
    server.inject_fault("error", status=504)

    # The first fault only matches /v1/currencies, so a time series takes the second one.
    assert get(server, "/2024-06-10..").status_code == 429
    assert get(server, "/currencies").status_code == 500
    assert get(server, "/currencies").status_code == 504
    assert get(server, "/currencies").status_code == 200


def test_clear_faults_drops_pending_faults(server: FrankfurterServer) -> None:
    server.inject_fault("error", times=5)
    server.clear_faults()

    assert get(server, "/currencies").status_code == 200


def test_unknown_fault_kind_is_refused(server: FrankfurterServer) -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        server.inject_fault("teapot")  # type: ignore[arg-type]


# -- request log and lifecycle -------------------------------------------------------------------


def test_requests_are_recorded(server: FrankfurterServer) -> None:
    server.inject_fault("error", path_prefix="/v1/currencies")
    get(server, "/currencies")
    get(server, "/2024-06-10..", base="USD")

    recorded = server.requests

    assert [(r.method, r.path, r.query, r.status) for r in recorded] == [
        ("GET", "/v1/currencies", "", 503),
        ("GET", "/v1/2024-06-10..", "base=USD", 200),
    ]
    assert recorded[0].timestamp <= recorded[1].timestamp <= time.time()
    assert server.request_count() == 2
    assert server.request_count("/v1/currencies") == 1

    server.reset_requests()

    assert server.request_count() == 0


def test_concurrent_requests_get_consistent_answers(server: FrankfurterServer) -> None:
    # A code no other test uses, so its walk is generated by these concurrent requests.
    server.add_currency("XTC", "Concurrency Test Unit", since=dt.date(1999, 1, 4))

    def fetch(_: int) -> bytes:
        return get(server, "/1999-01-04..", symbols="XTC").content

    with ThreadPoolExecutor(max_workers=8) as pool:
        bodies = list(pool.map(fetch, range(8)))

    assert len(set(bodies)) == 1
    assert len(json.loads(bodies[0])["rates"]) > 6000


def test_keep_alive_sessions_work(server: FrankfurterServer) -> None:
    with requests.Session() as session:
        statuses = [session.get(f"{server.base_url}/currencies", timeout=10).status_code for _ in range(5)]

    assert statuses == [200] * 5


def test_stop_releases_the_port() -> None:
    server = FrankfurterServer(today=FRIDAY).start()
    url = server.base_url
    with requests.Session() as session:
        assert session.get(f"{url}/currencies", timeout=10).status_code == 200
        server.stop()
        server.stop()  # idempotent

        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/currencies", timeout=2)
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url


def test_module_runs_as_a_script() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.frankfurter", "--port", "0", "--today", "2024-06-14"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", base_url)
        assert requests.get(f"{base_url}/latest", timeout=10).json()["date"] == "2024-06-14"
        # Another interpreter (with another str hash seed) serves the very same numbers.
        with FrankfurterServer(today=FRIDAY) as here:
            expected = get(here, "/2010-01-01..2010-02-01").content
        assert requests.get(f"{base_url}/2010-01-01..2010-02-01", timeout=10).content == expected
    finally:
        process.terminate()
        process.wait(timeout=60)
