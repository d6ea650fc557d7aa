"""A run stopped by a real signal (Ctrl-C's SIGINT, a worker's SIGTERM) in each dlt step.

`python -m pipelines exchange_rates` runs in a subprocess (`signal_during_step.py`) and signals
itself while extract, normalize or load is under way. The stopped run says so in one line - which
signal, which step, what happens to the data - with the exit status a shell gives a process a
signal ended, and is no permanent failure. The next run leaves no leftover in the working
directory, loads every row exactly once, and its headline counts the rows of every package it
loaded, the one it finished for the stopped run included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipelines import exchange_rates as exchange_rates_pipeline
from sandbox.frankfurter import FrankfurterServer
from tests.interrupts import run as run_child
from tests.snowflake.snowpipe_emulator import RATES_START, expected_history

ROOT = Path(__file__).resolve().parents[2]
HELPER = Path(__file__).with_name("signal_during_step.py")

pytestmark = pytest.mark.slow  # runs stopped in subprocesses

# What the stopped run says it leaves, step by step (the engine's words, checked below).
AFTER = {
    "extract": "Nothing of the data it was extracting is kept",
    "normalize": "What it extracted is kept as a pending load package",
    "load": "The load package is kept",
}


def stop_a_run(step: str, signame: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m pipelines exchange_rates` and signal it during `step`."""
    command = [sys.executable, str(HELPER), "exchange_rates", step, signame]
    return run_child(command, timeout=240, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def warehouse_rows(warehouse: Path) -> list[tuple[object, ...]]:
    if not warehouse.exists():
        return []
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = con.execute(
            "select 1 from information_schema.tables "
            "where table_schema = 'exchange_rates' and table_name = 'exchange_rates'"
        ).fetchall()
        if not tables:
            return []
        return con.execute(
            "select date, base, quote, rate from exchange_rates.exchange_rates order by all"
        ).fetchall()


def leftovers(working_dir: Path) -> list[str]:
    """Anything in the working directory that is neither committed nor pending."""
    found = [p for p in (working_dir / "load" / "new").glob("*") if p.is_dir()]
    found += [p for p in (working_dir / "normalize").glob("*") if p.is_dir() and p.name != "extracted"]
    return sorted(str(p.relative_to(working_dir)) for p in found)


@pytest.mark.parametrize(
    ("step", "signame"),
    [
        ("extract", "SIGINT"),
        ("extract", "SIGTERM"),
        ("normalize", "SIGTERM"),
        ("normalize", "SIGINT"),
        ("load", "SIGTERM"),
    ],
)
def test_a_run_stopped_by_a_signal_says_so_and_the_next_run_loads_every_row_once(
    rates_api: FrankfurterServer,
    warehouse: Path,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
    signame: str,
) -> None:
    if step == "load":  # many small files loaded one at a time: the stop comes between two jobs
        monkeypatch.setenv("NORMALIZE__DATA_WRITER__FILE_MAX_ITEMS", "200")
        monkeypatch.setenv("LOAD__WORKERS", "1")
    number = int(signal.Signals[signame])
    history = expected_history(rates_api, RATES_START)

    stopped = stop_a_run(step, signame)

    output = stopped.stdout + stopped.stderr
    assert f"sending {signame} during {step}" in stopped.stdout, output[-3000:]
    assert stopped.returncode == 128 + number, output[-3000:]
    said = stopped.stderr.strip().splitlines()[-1]
    assert said.startswith(
        f"Pipeline 'exchange_rates' was stopped by {signame} (signal {number}) during the {step} step. "
        f"{AFTER[step]}"
    ), output[-3000:]
    assert said.endswith("Nothing needs changing: run it again."), said
    for wrong in ("not retried", "change the setting", "SignalReceivedException", "KeyboardInterrupt"):
        assert wrong not in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]

    p = exchange_rates_pipeline.pipeline()
    working_dir = Path(p.working_dir)
    loaded_before = warehouse_rows(warehouse)
    if step == "extract":
        # dlt leaves the extraction's temporary folder, half-written, and commits nothing.
        assert [folder.split("/")[0] for folder in leftovers(working_dir)] == ["normalize"]
        assert not p.has_pending_data
        assert loaded_before == []
    elif step == "normalize":
        # dlt keeps the extracted package and its half-written normalised copy in load/new.
        [pending] = p.list_extracted_load_packages()
        assert leftovers(working_dir) == [f"load/new/{pending}"]
        assert loaded_before == []
    else:
        [pending] = p.list_normalized_load_packages()
        assert 0 < len(loaded_before) < len(history)

    report = exchange_rates_pipeline.run()

    assert warehouse_rows(warehouse) == history  # every row, once
    assert leftovers(working_dir) == []
    assert not exchange_rates_pipeline.pipeline().has_pending_data
    if step != "extract":
        assert report.finished_load_ids == [pending]
    assert report.lines()[0].startswith(
        f"exchange_rates: {len(history)} rows into duckdb dataset 'exchange_rates'"
    ), report.lines()


def test_a_package_dropped_after_a_stopped_normalisation_leaves_nothing_behind(
    rates_api: FrankfurterServer, warehouse: Path
) -> None:
    # What the engine did before it knew a stop from a failure (and still does after a permanent
    # normalize failure): the extracted package is aborted, its half-normalised copy in load/new
    # is left, and nothing in dlt ever removes it.
    stopped = stop_a_run("normalize", "SIGTERM")
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    p = exchange_rates_pipeline.pipeline()
    [pending] = p.list_extracted_load_packages()
    p.abort_packages()
    working_dir = Path(p.working_dir)
    assert leftovers(working_dir) == [f"load/new/{pending}"]
    assert not p.has_pending_data

    report = exchange_rates_pipeline.run()

    assert leftovers(working_dir) == []
    assert any(f"load/new/{pending}" in note for note in report.notes), report.notes
    assert warehouse_rows(warehouse) == expected_history(rates_api, RATES_START)
    assert pending not in report.all_load_ids
