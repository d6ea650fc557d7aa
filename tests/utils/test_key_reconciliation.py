"""When a key reconciliation is due, and what the summary learns of it (a real dlt pipeline's state)."""

from __future__ import annotations

from pathlib import Path

import dlt

from utils.key_reconciliation import reconcile_if_due, reconciled_deletes


def _pipeline(tmp_path: Path) -> dlt.Pipeline:
    return dlt.pipeline("reconcile_due", destination="duckdb", pipelines_dir=str(tmp_path / "p"))


def test_due_at_once_on_a_new_working_dir_then_every_n_runs(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path)
    calls: list[int] = []

    def reconcile() -> dict[str, int]:
        calls.append(1)
        return {"products": len(calls)}

    outcomes = [reconcile_if_due(pipeline, 3, reconcile) for _ in range(7)]
    assert outcomes == [{"products": 1}, None, None, {"products": 2}, None, None, {"products": 3}]
    # The count lives in the working directory: a new pipeline object continues it.
    assert reconcile_if_due(_pipeline(tmp_path), 3, reconcile) is None


def test_zero_never_reconciles_unless_forced(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path)
    assert [reconcile_if_due(pipeline, 0, lambda: {"t": 1}) for _ in range(3)] == [None, None, None]
    assert reconcile_if_due(pipeline, 0, lambda: {"t": 2}, force=True) == {"t": 2}


def test_a_whole_copy_counts_as_a_reconciliation_unless_one_is_forced(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path)
    calls: list[int] = []

    def reconcile() -> dict[str, int]:
        calls.append(1)
        return {"products": len(calls)}

    # A new working dir would reconcile at once; a run that copied the tables whole restarts the count.
    assert reconcile_if_due(pipeline, 3, reconcile, copied_whole=True) is None
    assert calls == []
    assert [reconcile_if_due(pipeline, 3, reconcile) for _ in range(3)] == [None, None, {"products": 1}]
    assert reconcile_if_due(pipeline, 3, reconcile, copied_whole=True, force=True) == {"products": 2}
    assert reconcile_if_due(pipeline, 0, reconcile, copied_whole=True) is None  # 0 still means never
    assert calls == [1, 1]


def test_the_summary_sees_only_this_runs_reconciliation(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path)
    assert reconciled_deletes(pipeline) is None
    assert reconciled_deletes(object()) is None
