"""The main job's guard against a dlt setting that would load the demo into someone else's file."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox import main_job


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
