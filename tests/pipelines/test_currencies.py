"""The currencies pipeline into DuckDB: counts, idempotence, atomic replace, the destination switch."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipelines import currencies as currencies_pipeline
from sandbox.frankfurter import FrankfurterServer
from sources.currencies import currencies_source
from utils.destinations import make_pipeline
from utils.errors import ConfigurationError, DestinationRejectedError, MalformedPayloadError, PipelineError
from utils.run_engine import run_pipeline


def table(warehouse: Path) -> list[tuple[str, str, str]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(
            "select code, name, _dlt_load_id from currencies.currencies order by code"
        ).fetchall()


def test_loads_every_currency_into_duckdb(frankfurter: FrankfurterServer, warehouse: Path) -> None:
    info = currencies_pipeline.run()
    assert info.destination == "duckdb"
    rows = table(warehouse)
    assert [(c, n) for c, n, _ in rows] == sorted(frankfurter.currencies.items())
    with duckdb.connect(str(warehouse), read_only=True) as con:
        types = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'currencies' and table_name = 'currencies'"
            ).fetchall()
        )
    assert types["code"] == "VARCHAR" and types["name"] == "VARCHAR"


def test_second_run_replaces_without_duplicates(frankfurter: FrankfurterServer, warehouse: Path) -> None:
    first = currencies_pipeline.run()
    frankfurter.currencies["XAU"] = "Gold"
    second = currencies_pipeline.run()
    rows = table(warehouse)
    assert len(rows) == len(frankfurter.currencies) == len({c for c, _, _ in rows})
    assert ("XAU", "Gold") in [(c, n) for c, n, _ in rows]
    assert {load_id for _, _, load_id in rows} == {second.load_ids[0]} != {first.load_ids[0]}


def _constrain_names(warehouse: Path, max_length: int) -> None:
    """Create the table ourselves with a CHECK that the next load will violate, as a real DB can."""
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema if not exists currencies")
        con.execute(
            "create table currencies.currencies (code varchar not null, "
            f"name varchar not null check (length(name) <= {max_length}), "
            "_dlt_load_id varchar not null, _dlt_id varchar not null)"
        )


def test_failed_replace_keeps_the_previous_table(frankfurter: FrankfurterServer, warehouse: Path) -> None:
    _constrain_names(warehouse, 40)
    first = currencies_pipeline.run()
    before = table(warehouse)
    assert len(before) == len(frankfurter.currencies)

    frankfurter.currencies["XTS"] = "A testing code with a name far too long for the check"
    with pytest.raises(DestinationRejectedError, match=r"Pipeline 'currencies'.*CHECK constraint failed"):
        currencies_pipeline.run()
    assert not currencies_pipeline.pipeline().has_pending_data  # aborted, not stuck
    assert table(warehouse) == before  # same rows, same load id: never half-replaced
    assert {load_id for _, _, load_id in before} == {first.load_ids[0]}

    del frankfurter.currencies["XTS"]
    currencies_pipeline.run()  # and the pipeline recovers on the next run
    assert [(c, n) for c, n, _ in table(warehouse)] == sorted(frankfurter.currencies.items())


def test_truncate_and_insert_would_have_lost_the_table(
    frankfurter: FrankfurterServer, warehouse: Path
) -> None:
    # The control for the test above: dlt's default strategy empties the table before failing.
    _constrain_names(warehouse, 40)
    pipeline = make_pipeline("currencies", "currencies", replace_strategy="truncate-and-insert")
    run_pipeline(pipeline, currencies_source)
    frankfurter.currencies["XTS"] = "A testing code with a name far too long for the check"
    with pytest.raises(PipelineError):
        run_pipeline(pipeline, currencies_source)
    assert table(warehouse) == []


def test_malformed_payload_loads_nothing(frankfurter: FrankfurterServer, warehouse: Path) -> None:
    currencies_pipeline.run()
    before = table(warehouse)
    frankfurter.inject_fault("malformed", times=1)
    with pytest.raises(MalformedPayloadError, match="currencies"):
        currencies_pipeline.run()
    assert table(warehouse) == before


def test_dlt_destination_switches_to_duckdb_and_defaults_to_snowflake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert currencies_pipeline.pipeline().destination.destination_type.endswith("duckdb")
    monkeypatch.delenv("DLT__DESTINATION")
    assert currencies_pipeline.pipeline().destination.destination_type.endswith("snowflake")


def test_unknown_destination_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLT__DESTINATION", "oracle")
    with pytest.raises(ConfigurationError, match="DLT__DESTINATION='oracle'"):
        currencies_pipeline.pipeline()


def test_snowflake_without_credentials_names_the_missing_keys(
    frankfurter: FrankfurterServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Snowflake named explicitly, no environment: nothing (no database, no role) is pinned.
    monkeypatch.setenv("DLT__DESTINATION", "snowflake")
    monkeypatch.delenv("DLT__ENVIRONMENT", raising=False)
    monkeypatch.chdir(tmp_path)  # no .dlt/secrets.toml from a developer's checkout
    with pytest.raises(ConfigurationError) as caught:
        currencies_pipeline.run()
    message = str(caught.value)
    assert "Pipeline 'currencies' cannot load into snowflake" in message
    assert "destination.snowflake.credentials.host" in message
    assert "destination.snowflake.credentials.database" in message
    assert "DESTINATION__SNOWFLAKE__CREDENTIALS__HOST" in message
    assert "DLT__DESTINATION=duckdb" in message
    assert frankfurter.request_count() == 0  # failed before extracting anything
