"""Issue 12.2: every table keeps dlt's `_dlt_load_id`, `*_staging` datasets are emptied, no noise on products runs."""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb

from pipelines import currencies, products
from sandbox.frankfurter import FrankfurterServer
from sandbox.postgres import CatalogueMutator


def load_ids_by_table(warehouse: Path, dataset: str) -> dict[str, set[str]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = [
            t
            for (t,) in con.execute(
                "select table_name from information_schema.tables where table_schema = ? and table_name not like '_dlt%'",
                [dataset],
            ).fetchall()
        ]
        return {
            t: {i for (i,) in con.execute(f'select distinct _dlt_load_id from {dataset}."{t}"').fetchall()}
            for t in tables
        }


def rows_in_staging(warehouse: Path, dataset: str) -> dict[str, int]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = [
            t
            for (t,) in con.execute(
                "select table_name from information_schema.tables where table_schema = ? and table_name not like '_dlt%'",
                [f"{dataset}_staging"],
            ).fetchall()
        ]
        return {
            t: con.execute(f'select count(*) from {dataset}_staging."{t}"').fetchall()[0][0] for t in tables
        }


def test_products_arrow_tables_carry_the_load_id_and_staging_is_emptied(
    catalogue: CatalogueMutator, warehouse: Path
) -> None:
    first = products.run()
    catalogue.update_products(15)
    second = products.run()

    by_table = load_ids_by_table(warehouse, "products")
    assert set(by_table) == {"products", "categories"}
    assert by_table["products"] == {*first.load_ids, *second.load_ids}  # each row says which load wrote it
    assert by_table["categories"] <= {*first.load_ids, *second.load_ids}
    staged = rows_in_staging(warehouse, "products")
    assert staged and set(staged.values()) == {0}, staged  # the merge went through staging, then emptied


def test_replace_staging_is_emptied_after_the_swap(frankfurter: FrankfurterServer, warehouse: Path) -> None:
    report = currencies.run()

    assert load_ids_by_table(warehouse, "currencies") == {"currencies": set(report.load_ids)}
    staged = rows_in_staging(warehouse, "currencies")
    assert staged == {"currencies": 0}


def test_a_products_run_logs_no_warning_about_arrow_column_hints(
    catalogue: CatalogueMutator, warehouse: Path
) -> None:
    warnings: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                warnings.append(record.getMessage())

    handler = Collect()
    dlt_logger = logging.getLogger("dlt")  # dlt's own logger does not propagate
    dlt_logger.addHandler(handler)
    try:
        products.run()
        catalogue.update_products(5)
        products.run()
    finally:
        dlt_logger.removeHandler(handler)

    assert not [w for w in warnings if "column hints were different" in w], warnings
