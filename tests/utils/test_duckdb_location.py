"""dlt's own DuckDB setting wins over the project's default file (`local.duckdb_path`)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipelines.currencies import run
from sandbox.frankfurter import FrankfurterServer
from utils.destinations import make_pipeline


def currencies_in(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return int(con.execute("select count(*) from currencies.currencies").fetchall()[0][0])


def test_destination_duckdb_credentials_wins_over_the_project_default(
    frankfurter: FrankfurterServer, warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = tmp_path / "elsewhere" / "x.duckdb"
    chosen.parent.mkdir()
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(chosen))
    run()
    assert currencies_in(chosen) == len(frankfurter.currencies)
    assert not warehouse.exists()  # the project's default (LOCAL__DUCKDB_PATH) was not touched


def test_a_pipeline_scoped_duckdb_setting_wins_for_that_pipeline_only(
    frankfurter: FrankfurterServer, warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = tmp_path / "currencies-only.duckdb"
    monkeypatch.setenv("CURRENCIES__DESTINATION__DUCKDB__CREDENTIALS", str(chosen))
    run()
    assert currencies_in(chosen) == len(frankfurter.currencies)
    other = make_pipeline("products", "products")
    assert Path(other.destination_client().config.credentials.database) == warehouse


def test_without_dlt_settings_the_project_default_file_is_used(
    frankfurter: FrankfurterServer, warehouse: Path
) -> None:
    run()
    assert currencies_in(warehouse) == len(frankfurter.currencies)


def test_a_duckdb_credentials_table_is_resolved_by_dlt_itself(
    warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = tmp_path / "from-fields.duckdb"
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS__DATABASE", str(chosen))
    pipeline = make_pipeline("currencies", "currencies")
    assert Path(pipeline.destination_client().config.credentials.database) == chosen
