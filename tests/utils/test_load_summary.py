"""The load report's headline: the rows of every package a run loaded."""

from __future__ import annotations

from utils.load_summary import LoadSummary


def test_the_headline_counts_the_rows_of_packages_finished_for_an_earlier_try() -> None:
    report = LoadSummary(
        pipeline="exchange_rates",
        destination="duckdb",
        dataset="exchange_rates",
        load_ids=["2"],
        row_counts={},
        finished_load_ids=["1"],
        rows_per_load={"1": {"exchange_rates": 222_586}, "2": {}},
    )
    assert report.lines() == [
        "exchange_rates: 222586 rows into duckdb dataset 'exchange_rates' "
        "(load id 1, 2; finished for an earlier try: 1)",
        "  exchange_rates: 222586 rows",
    ]
    unknown = LoadSummary(
        "exchange_rates", "duckdb", "exchange_rates", finished_load_ids=["1"], rows_per_load={}
    )
    assert unknown.lines()[0] == (
        "exchange_rates: 0 rows into duckdb dataset 'exchange_rates' "
        "(load id 1; finished for an earlier try: 1; nothing new extracted; rows of 1 not known)"
    )
