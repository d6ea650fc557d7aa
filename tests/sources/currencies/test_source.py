"""The currencies source against the sandbox's Frankfurter-compatible API."""

from __future__ import annotations

import time

import pytest
from dlt.extract.exceptions import ResourceExtractionError

from sandbox.frankfurter import FrankfurterServer
from sources.currencies import currencies_source
from sources.currencies.source import currencies
from utils.destinations import find_cause
from utils.errors import (
    MalformedPayloadError,
    PipelineError,
    UpstreamRequestError,
    UpstreamUnavailableError,
    UpstreamUnreachableError,
)


def extract(server: FrankfurterServer) -> list[dict[str, str]]:
    return extract_from(server.base_url)


def extract_from(base_url: str) -> list[dict[str, str]]:
    """Iterate the resource as dlt would, surfacing our error from dlt's wrapper."""
    try:
        return list(currencies(base_url))
    except ResourceExtractionError as exc:
        ours = find_cause(exc, PipelineError)
        raise ours if ours is not None else exc from None


def test_one_row_per_currency_with_code_and_name(frankfurter: FrankfurterServer) -> None:
    rows = extract(frankfurter)
    assert rows == [{"code": c, "name": n} for c, n in sorted(frankfurter.currencies.items())]
    assert len(rows) >= 30
    assert {"code": "EUR", "name": "Euro"} in rows


def test_source_reads_base_url_from_its_config_section(frankfurter: FrankfurterServer) -> None:
    # SOURCES__CURRENCIES__BASE_URL is set by the fixture: the source must pick it up by itself.
    source = currencies_source()
    assert source.section == "currencies"
    assert len(list(source.currencies)) == len(frankfurter.currencies)


def test_resource_hints() -> None:
    resource = currencies_source(base_url="http://127.0.0.1:9").currencies
    assert resource.write_disposition == "replace"
    assert resource.compute_table_schema()["columns"]["code"]["primary_key"] is True


def test_transient_5xx_is_retried(frankfurter: FrankfurterServer) -> None:
    frankfurter.inject_fault("error", times=2, status=503)
    assert len(extract(frankfurter)) == len(frankfurter.currencies)
    assert frankfurter.request_count("/v1/currencies") == 3


def test_429_waits_for_retry_after(frankfurter: FrankfurterServer) -> None:
    frankfurter.inject_fault("rate_limit", times=1, retry_after=1)
    assert len(extract(frankfurter)) == len(frankfurter.currencies)
    first, second = frankfurter.requests[0], frankfurter.requests[1]
    assert first.status == 429 and second.status == 200
    # dlt's client honours Retry-After instead of its own (0.05 s) backoff.
    assert second.timestamp - first.timestamp >= 0.9


def test_slow_response_times_out_and_is_retried(
    frankfurter: FrankfurterServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "0.5")
    frankfurter.inject_fault("slow", times=1, delay=1.5)
    assert len(extract(frankfurter)) == len(frankfurter.currencies)
    time.sleep(1.5)  # the abandoned slow request is logged only once the server has answered it
    assert frankfurter.request_count("/v1/currencies") == 2


def test_persistent_5xx_raises_a_clear_error(frankfurter: FrankfurterServer) -> None:
    frankfurter.inject_fault("error", times=10, status=500)
    with pytest.raises(
        UpstreamUnavailableError, match=r"HTTP 500 after retries.*sources\.currencies\.base_url"
    ):
        extract(frankfurter)
    assert frankfurter.request_count("/v1/currencies") == 3  # RUNTIME__REQUEST_MAX_ATTEMPTS


def test_404_is_not_retried(frankfurter: FrankfurterServer) -> None:
    frankfurter.inject_fault("error", times=10, status=404)
    with pytest.raises(UpstreamRequestError, match=r"refused the request \(HTTP 404\)"):
        extract(frankfurter)
    assert frankfurter.request_count("/v1/currencies") == 1


def test_unreachable_api_names_the_setting() -> None:
    # Nothing listens on port 9: refused on the first connection, so it fails at once, permanently
    # (issue 12.3), instead of being retried by dlt's client for half a minute.
    with pytest.raises(
        UpstreamUnreachableError, match=r"refused the connection.*sources\.currencies\.base_url"
    ):
        extract_from("http://127.0.0.1:9/v1")


def test_malformed_json_raises_a_clear_error(frankfurter: FrankfurterServer) -> None:
    frankfurter.inject_fault("malformed", times=1)
    with pytest.raises(MalformedPayloadError, match="not valid JSON"):
        extract(frankfurter)


@pytest.mark.parametrize(
    ("code", "name", "message"),
    [
        ("eur1", "Bad", "record 'eur1' .* not an ISO 4217 code"),
        ("XXA", "", "record 'XXA' .* invalid name ''"),
        ("XXB", None, "record 'XXB' .* invalid name None"),
        ("XXC", "Eu\x00ro", r"record 'XXC' .* invalid name 'Eu\\x00ro'"),  # dlt's DuckDB writer drops NUL
    ],
)
def test_bad_record_is_named(frankfurter: FrankfurterServer, code: str, name: object, message: str) -> None:
    frankfurter.currencies[code] = name  # type: ignore[assignment]
    with pytest.raises(MalformedPayloadError, match=message):
        extract(frankfurter)
