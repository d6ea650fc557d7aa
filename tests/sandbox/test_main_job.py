"""The main job's guards: never load into, or empty, a file or folder that is not the demo's own;
and its summary's footnote."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import dlt
import duckdb
import pytest

from sandbox import main_job
from utils.load_summary import LoadSummary


def test_a_duckdb_destination_override_is_refused_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    theirs = tmp_path / "mine.duckdb"
    theirs.write_bytes(b"someone's data")
    demo = tmp_path / "demo" / "warehouse.duckdb"
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(theirs))

    code = main_job.main(["--warehouse", str(demo)])

    assert code == 2
    error = capsys.readouterr().err
    assert "DESTINATION__DUCKDB__CREDENTIALS is set" in error
    assert "--warehouse" in error
    assert theirs.read_bytes() == b"someone's data"
    assert not demo.parent.exists()  # nothing reset, no sandbox started


def test_only_destination_credentials_count_as_overrides() -> None:
    environ = {
        "DESTINATION__DUCKDB__CREDENTIALS": "a.duckdb",
        "DESTINATION__CREDENTIALS__DATABASE": "b.duckdb",
        "DESTINATION__SNOWFLAKE__CREDENTIALS__HOST": "acct",
        "DLT__DESTINATION": "duckdb",
    }

    assert main_job.destination_overrides(environ) == [
        "DESTINATION__CREDENTIALS__DATABASE",
        "DESTINATION__DUCKDB__CREDENTIALS",
    ]


def test_a_file_that_is_not_a_duckdb_database_is_refused_and_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    mine = tmp_path / "dlt" / "my_own_file.txt"
    mine.parent.mkdir()
    mine.write_text("keep me")

    assert main_job.main(["--warehouse", str(notes)]) == 2

    assert "is not a DuckDB database file" in capsys.readouterr().err
    assert notes.read_text() == "my notes"
    assert mine.read_text() == "keep me"


def test_a_dlt_folder_the_demo_did_not_create_is_refused_and_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `--warehouse ~/x.duckdb` beside someone's own ~/dlt.
    mine = tmp_path / "dlt" / "my_own_file.txt"
    mine.parent.mkdir()
    mine.write_text("keep me")

    assert main_job.main(["--warehouse", str(tmp_path / "x.duckdb")]) == 2

    assert f"{tmp_path / 'dlt'} exists and was not created by the demo" in capsys.readouterr().err
    assert mine.read_text() == "keep me"
    assert not (tmp_path / "x.duckdb").exists()


def test_a_directory_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data").mkdir()
    assert main_job.main(["--warehouse", str(tmp_path / "data")]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert (tmp_path / "data").is_dir()


def test_the_demos_own_warehouse_and_state_are_emptied_on_the_next_run(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    assert main_job.reset_refusal(warehouse) is None  # nothing there yet
    main_job.reset_local_state(warehouse)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create table t as select 1 as x")
    leftover = main_job.dlt_data_dir(warehouse) / "pipelines" / "currencies" / "state.json"
    leftover.parent.mkdir(parents=True)
    leftover.write_text("{}")

    # A second run: the file is a DuckDB database and the state folder carries the demo's mark.
    assert main_job.reset_refusal(warehouse) is None
    main_job.reset_local_state(warehouse)

    assert not warehouse.exists()
    assert not leftover.exists()
    assert (main_job.dlt_data_dir(warehouse) / main_job.DEMO_MARK).is_file()


def test_the_repository_default_is_reset_although_other_tasks_share_its_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `.local/dlt` is also where the other ./dev tasks keep dlt's state (no demo mark there); the
    # README says the demo starts from an empty `.local/` every time.
    default = tmp_path / ".local" / "warehouse.duckdb"
    (tmp_path / ".local" / "dlt" / "pipelines").mkdir(parents=True)
    monkeypatch.setattr(main_job, "DEFAULT_WAREHOUSE", default)
    assert main_job.reset_refusal(default) is None
    assert main_job.reset_refusal(tmp_path / ".local" / "other.duckdb") is not None


def test_the_footnote_says_what_each_pipelines_second_run_loaded_from_its_write_dispositions(
    tmp_path: Path,
) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    pipelines_dir = tmp_path / "dlt" / "pipelines"

    @dlt.resource(write_disposition="replace")
    def listed() -> Iterator[dict[str, int]]:
        yield {"id": 1}

    @dlt.resource(write_disposition="append")
    def appended() -> Iterator[dict[str, int]]:
        yield {"id": 1}

    @dlt.resource(write_disposition="merge", primary_key="id")
    def merged() -> Iterator[dict[str, int]]:
        yield {"id": 1}

    outcomes = []
    for name, resources in (("lists", [listed]), ("mixed", [appended, merged])):
        pipeline = dlt.pipeline(
            name,
            pipelines_dir=str(pipelines_dir),
            destination=dlt.destinations.duckdb(str(warehouse)),
            dataset_name=name,
        )
        summary = LoadSummary.from_load_info(pipeline.run(resources))
        outcomes.append(main_job.FlowOutcome(name, "Completed", summary))

    dispositions = main_job.write_dispositions(pipelines_dir, outcomes)
    text = main_job.render(outcomes, outcomes, warehouse, dispositions)

    assert dispositions == {
        "lists": {"listed": "replace"},
        "mixed": {"appended": "append", "merged": "merge"},
    }
    assert "          lists - the whole table again (write disposition replace);" in text
    assert "          mixed: appended - only the rows new upstream (write disposition append);" in text
    assert "          mixed: merged - only new, changed and deleted rows (write disposition merge);" in text
    assert "incrementally" not in text
    # The query hint works from any directory: absolute paths only.
    hint = text.split("Query it, e.g.:", 1)[1].strip().splitlines()[0]
    assert f"duckdb.connect('{warehouse.resolve()}', read_only=True)" in hint
    assert hint.split()[0] == sys.executable and Path(sys.executable).is_absolute()
