"""Helpers shared by the HubSpot tests: a sandbox portal the source points at, and what loaded."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sandbox.hubspot import HubSpotServer, RecordedRequest

TOKEN = "pat-na1-hubspot-test-token"
# Generous limits: tests that are not about pacing should not wait for it.
FAST = {"rate_limit": 1_000_000, "search_rate_per_second": 10_000}


class SimulatedClock:
    """A clock that only moves when a pacer sleeps (or a test advances it): pacing tests are exact."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


def most_in_any_window(times: list[float], window: float) -> int:
    """The most of `times` that fall in any window of `window` seconds starting at one of them."""
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


@contextlib.contextmanager
def portal(monkeypatch: pytest.MonkeyPatch, **options: Any) -> Iterator[HubSpotServer]:
    """Start a sandbox portal and point the HubSpot source at it (token, URL, search pacing).

    Args:
        monkeypatch: To set the source's configuration through environment variables.
        **options: `HubSpotServer` arguments; the fast limits above unless given.

    Yields:
        The running server.
    """
    settings = {"contacts": 500, "custom_properties": 20, **FAST, **options}
    with HubSpotServer(token=TOKEN, **settings) as server:
        monkeypatch.setenv("SOURCES__HUBSPOT__BASE_URL", server.base_url)
        monkeypatch.setenv("SOURCES__HUBSPOT__ACCESS_TOKEN", TOKEN)
        monkeypatch.setenv(
            "SOURCES__HUBSPOT__SEARCH_REQUESTS_PER_SECOND", str(settings["search_rate_per_second"])
        )
        yield server


def render(value: Any) -> str | None:
    """A loaded (typed) value written back the way HubSpot sends it, to compare with `snapshot()`."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        # HubSpot writes numbers without an exponent and without trailing zeros. (Not through
        # `normalize()`: Decimal arithmetic rounds to 28 digits.)
        text = format(value, "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        moment = value.astimezone(UTC)
        return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def loaded_value(row: dict[str, Any], name: str) -> str | None:
    """A property's value as HubSpot sent it: from its column, or, where the source put it, from a
    variant column (`<name>__v_<type>`: a value that did not match the property's type, or a
    property whose column has another type)."""
    values = [row.get(name), *(v for k, v in row.items() if k.startswith(f"{name}__v_"))]
    present = [render(v) for v in values if v is not None]
    assert len(present) <= 1, f"contact {row['id']}: {name} loaded twice: {present}"
    return present[0] if present else None


def loaded_contacts(warehouse: Path) -> list[dict[str, Any]]:
    """Every row of `hubspot.contacts` in the DuckDB file, as dicts."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        cursor = con.execute("select * from hubspot.contacts")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def column_types(warehouse: Path) -> dict[str, str]:
    """DuckDB data type of each column of `hubspot.contacts`."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return dict(
            con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'hubspot' and table_name = 'contacts'"
            ).fetchall()
        )


def assert_destination_equals_portal(warehouse: Path, server: HubSpotServer) -> None:
    """The table holds exactly the portal's live contacts, once each, with every property value."""
    rows = loaded_contacts(warehouse)
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)), "a contact was loaded twice"
    expected = server.snapshot()
    assert set(ids) == set(expected)
    assert not any(row["archived"] for row in rows)
    names = [p.name for p in server.property_definitions]
    mismatches = [
        (row["id"], name, loaded_value(row, name), expected[row["id"]][name])
        for row in rows
        for name in names
        if loaded_value(row, name) != expected[row["id"]][name]
    ]
    assert mismatches == [], mismatches[:10]


def assert_retry_after_respected(log: list[RecordedRequest]) -> None:
    """No request arrived before the `Retry-After` of an earlier 429 had elapsed."""
    for i, throttled in enumerate(log):
        if throttled.status != 429 or throttled.retry_after is None:
            continue
        later = [r for r in log[i + 1 :] if r.at > throttled.at]
        early = [r for r in later if r.at < throttled.at + throttled.retry_after]
        assert early == [], f"{len(early)} request(s) within Retry-After={throttled.retry_after} s of a 429"
