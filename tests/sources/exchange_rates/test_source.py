"""The exchange_rates source against the sandbox's Frankfurter-compatible API (no destination)."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from decimal import Decimal
from typing import Any

import pytest
from dlt.extract.exceptions import ResourceExtractionError

from sandbox.frankfurter import FIRST_DAY, FrankfurterServer
from sources.exchange_rates import exchange_rates_source
from sources.exchange_rates.source import parse_time_series
from tests.snowflake.snowpipe_emulator import RATES_START, expected_history
from utils.destinations import find_cause
from utils.errors import (
    ConfigurationError,
    MalformedPayloadError,
    PipelineError,
    UpstreamRequestError,
    UpstreamUnavailableError,
)


def extract(**options: Any) -> list[dict[str, Any]]:
    """Iterate the source as dlt would, surfacing our error from dlt's wrapper."""
    try:
        return list(exchange_rates_source(**options))
    except ResourceExtractionError as exc:
        ours = find_cause(exc, PipelineError)
        raise ours if ours is not None else exc from None


def as_tuples(rows: list[dict[str, Any]]) -> list[tuple[dt.date, str, str, float]]:
    return sorted((r["date"], r["base"], r["quote"], r["rate"]) for r in rows)


def test_one_row_per_day_and_currency(rates_api: FrankfurterServer) -> None:
    rows = extract()
    assert as_tuples(rows) == expected_history(rates_api, RATES_START)
    assert set(rows[0]) == {"date", "base", "quote", "rate"}
    assert all(type(r["date"]) is dt.date and type(r["rate"]) is float for r in rows)
    assert len({(r["date"], r["quote"]) for r in rows}) == len(rows)


def test_source_reads_its_config_section(
    rates_api: FrankfurterServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__EXCHANGE_RATES__START_DATE", "2026-03-09")
    monkeypatch.setenv("SOURCES__EXCHANGE_RATES__CHUNK_DAYS", "2")
    source = exchange_rates_source()
    assert source.section == "exchange_rates"
    rows = list(source)
    assert {r["date"] for r in rows} == set(rates_api.working_days(dt.date(2026, 3, 9), rates_api.today))
    # Two days per request: 9-10, 11-12, 13-14 (then nothing is published after the 13th).
    assert [r.path for r in rates_api.requests][:3] == [
        "/v1/2026-03-09..2026-03-10",
        "/v1/2026-03-11..2026-03-12",
        "/v1/2026-03-13..2026-03-14",
    ]


def test_resource_hints() -> None:
    resource = exchange_rates_source(base_url="http://127.0.0.1:9").exchange_rates
    assert resource.write_disposition == "append"
    columns = resource.compute_table_schema()["columns"]
    assert columns["date"]["data_type"] == "date"
    assert columns["rate"]["data_type"] == "double"
    assert columns["date"]["nullable"] is False and columns["quote"]["nullable"] is False


def test_backfill_asks_in_bounded_chunks(rates_api: FrankfurterServer) -> None:
    rows = extract(chunk_days=30)
    assert as_tuples(rows) == expected_history(rates_api, RATES_START)
    paths = [r.path for r in rates_api.requests if r.status == 200]
    assert paths[0] == f"/v1/{RATES_START}..{RATES_START + dt.timedelta(days=29)}"
    for path in paths:
        start, end = (dt.date.fromisoformat(p) for p in path.removeprefix("/v1/").split(".."))
        assert (end - start).days == 29
    # 2025-12-01 to 2026-03-13 is 103 days: four chunks, all published.
    assert len(paths) == 4


def test_chunks_starting_on_a_closed_day_do_not_repeat_the_day_before(rates_api: FrankfurterServer) -> None:
    # Five-day chunks from a Monday start every other chunk on a Saturday: the API then sends the
    # Friday again, which the previous chunk already yielded.
    rows = extract(start_date="2026-01-05", chunk_days=5)
    assert as_tuples(rows) == expected_history(rates_api, dt.date(2026, 1, 5))
    answers = [r for r in rates_api.requests if r.path == "/v1/2026-01-10..2026-01-14"]
    assert answers and answers[0].status == 200


def test_start_on_a_holiday_leaves_out_the_working_day_before(rates_api: FrankfurterServer) -> None:
    rows = extract(start_date="2026-01-01")  # TARGET closing day: the API starts on 2025-12-31
    assert min(r["date"] for r in rows) == dt.date(2026, 1, 2)


def test_history_ends_when_the_api_has_nothing_newer(rates_api: FrankfurterServer) -> None:
    # The API's last day is weeks before this machine's clock: after the last published chunk the
    # next one answers 404 "not found", which ends the history instead of failing.
    start = dt.date.today() - dt.timedelta(days=100)
    rates_api.publish_through(start + dt.timedelta(days=45))
    rows = extract(start_date=start.isoformat(), chunk_days=20)
    assert as_tuples(rows) == expected_history(rates_api, start)
    assert [r.status for r in rates_api.requests] == [200, 200, 200, 404]


def test_full_history_from_1999(rates_api: FrankfurterServer) -> None:
    rows = extract(start_date="1999-01-04")
    days = rates_api.working_days(FIRST_DAY, rates_api.today)
    assert min(r["date"] for r in rows) == FIRST_DAY
    assert len({r["date"] for r in rows}) == len(days)
    assert len({(r["date"], r["quote"]) for r in rows}) == len(rows)
    # Retired currencies are rows on the days they were published, and only then.
    cyp_days = sorted(r["date"] for r in rows if r["quote"] == "CYP")
    assert cyp_days[0] == FIRST_DAY and cyp_days[-1] == dt.date(2007, 12, 31)
    assert len([r for r in rows if r["date"] == rates_api.today]) == len(
        [c for c in rates_api.coverage if rates_api.rate(rates_api.today, c) is not None]
    )
    # A year per request; the chunks after the API's last day stop at the first 404.
    requests = rates_api.request_count("/v1/")
    assert math.ceil((rates_api.today - FIRST_DAY).days / 365) <= requests
    assert requests <= math.ceil(((dt.date.today() - FIRST_DAY).days + 1) / 365)


def test_cross_rates_integers_become_floats(rates_api: FrankfurterServer) -> None:
    rows = extract(start_date="2026-03-02", base="usd")
    idr = [r for r in rows if r["quote"] == "IDR"]
    assert idr and all(r["rate"] > 5000 and type(r["rate"]) is float for r in idr)
    assert {r["base"] for r in rows} == {"USD"}
    assert "EUR" in {r["quote"] for r in rows} and "USD" not in {r["quote"] for r in rows}
    assert all(r.query == "base=USD" for r in rates_api.requests)


@pytest.mark.parametrize(
    ("value", "what"),
    [(None, "missing (null)"), ("n/a", "'n/a', not a positive number"), (-1, "-1, not a positive number")],
)
def test_malformed_rate_names_the_day_and_currency(
    rates_api: FrankfurterServer, value: object, what: str
) -> None:
    rates_api.corrupt(dt.date(2026, 2, 3), "USD", value)
    with pytest.raises(
        MalformedPayloadError, match=rf"the USD rate on 2026-02-03 .* is {re.escape(what)}"
    ) as caught:
        extract()
    assert "nothing from this run was loaded" in str(caught.value)


def test_a_rate_a_double_would_change_is_refused_not_rounded(rates_api: FrankfurterServer) -> None:
    # Issue 11.2: `rate` is a double. A JSON integer above 2**53 (or a fraction with more digits than
    # a double holds) used to load rounded: 12345678901234567891 as 12345678901234567168.
    rates_api.corrupt(dt.date(2026, 2, 3), "USD", 12345678901234567891)
    with pytest.raises(
        MalformedPayloadError,
        match=r"the USD rate on 2026-02-03 .* is 12345678901234567891, which the double column "
        r"exchange_rates\.rate cannot hold as sent",
    ):
        extract()
    rates_api.clear_overrides()
    rates_api.corrupt(dt.date(2026, 2, 3), "USD", 2**60)  # large, but a double holds it exactly
    assert {r["rate"] for r in extract() if r["date"] == dt.date(2026, 2, 3) and r["quote"] == "USD"} == {
        float(2**60)
    }


def test_rates_are_parsed_as_decimals_so_extra_digits_are_seen() -> None:
    text = '{"base": "EUR", "rates": {"2026-02-03": {"USD": 1.0812, "JPY": 1.08120000000000000001}}}'
    payload = json.loads(text, parse_float=Decimal)  # as the source parses each answer
    with pytest.raises(MalformedPayloadError, match=r"JPY rate on 2026-02-03 from GET u is 1\.0812000"):
        parse_time_series(payload, "u", "EUR")
    payload["rates"]["2026-02-03"].pop("JPY")
    rows = parse_time_series(payload, "u", "EUR")
    assert [(r["quote"], r["rate"], type(r["rate"])) for r in rows] == [("USD", 1.0812, float)]


def test_day_without_rates_is_malformed() -> None:
    payload = {"base": "EUR", "rates": {"2026-02-03": {}}}
    with pytest.raises(MalformedPayloadError, match="2026-02-03 from GET u has no rates"):
        parse_time_series(payload, "u", "EUR")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "should return a time series"),
        ({"base": "EUR"}, "should return a time series"),
        ({"base": "USD", "rates": {}}, "rates against 'USD', not 'EUR'"),
        ({"base": "EUR", "rates": {"03/02/2026": {"USD": 1.1}}}, "'03/02/2026' that is not a YYYY-MM-DD"),
        ({"base": "EUR", "rates": {"2026-02-03": {"usd": 1.1}}}, "'usd', which is not an ISO 4217 code"),
        (
            {"base": "EUR", "rates": {"2026-02-03": {"USD": True}}},
            "USD rate on 2026-02-03 from GET u is True",
        ),
        (
            {"base": "EUR", "rates": {"2026-02-03": {"USD": 1e400}}},
            "USD rate on 2026-02-03 from GET u is inf",
        ),
    ],
)
def test_payloads_of_the_wrong_shape_are_malformed(payload: object, message: str) -> None:
    with pytest.raises(MalformedPayloadError, match=re.escape(message)):
        parse_time_series(payload, "u", "EUR")


def test_parse_leaves_out_days_already_yielded() -> None:
    payload = {"base": "EUR", "rates": {"2026-02-06": {"USD": 1.1}, "2026-02-09": {"USD": 1.2, "GBP": 0.8}}}
    rows = parse_time_series(payload, "u", "EUR", after=dt.date(2026, 2, 6))
    assert [(r["date"], r["quote"], r["rate"]) for r in rows] == [
        (dt.date(2026, 2, 9), "GBP", 0.8),
        (dt.date(2026, 2, 9), "USD", 1.2),
    ]


def test_invalid_json_is_malformed(rates_api: FrankfurterServer) -> None:
    rates_api.inject_fault("malformed", times=1)
    with pytest.raises(MalformedPayloadError, match="not valid JSON"):
        extract()


def test_transient_5xx_is_retried(rates_api: FrankfurterServer) -> None:
    rates_api.inject_fault("error", times=2, status=503)
    assert as_tuples(extract()) == expected_history(rates_api, RATES_START)
    assert [r.status for r in rates_api.requests][:3] == [503, 503, 200]


def test_persistent_5xx_is_unavailable(rates_api: FrankfurterServer) -> None:
    rates_api.inject_fault("error", times=3, status=502)
    with pytest.raises(UpstreamUnavailableError, match=r"HTTP 502 after retries"):
        extract()


def test_unknown_base_is_a_request_error(rates_api: FrankfurterServer) -> None:
    # The first range always starts at a published day, so 404 there is a wrong setting.
    with pytest.raises(UpstreamRequestError, match=r"HTTP 404.*sources\.exchange_rates\.base`"):
        extract(base="XXX")
    assert rates_api.request_count() == 1


def test_wrong_base_url_is_a_request_error(rates_api: FrankfurterServer) -> None:
    with pytest.raises(UpstreamRequestError, match=r"sources\.exchange_rates\.base_url"):
        extract(base_url=rates_api.base_url.removesuffix("/v1") + "/v2")


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"start_date": "04/01/1999"}, "sources.exchange_rates.start_date"),
        ({"base": "euro"}, "sources.exchange_rates.base"),
        ({"chunk_days": 0}, "sources.exchange_rates.chunk_days"),
        ({"chunk_days": 10_000}, "sources.exchange_rates.chunk_days"),
    ],
)
def test_invalid_settings_name_the_key(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigurationError, match=key.replace(".", r"\.")):
        exchange_rates_source(base_url="http://127.0.0.1:9", **options)
