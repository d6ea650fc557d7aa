"""What a pipeline run loaded: the run engine's report, which flows log and publish and the main job prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # flows import this module; it needs no dlt at run time
    from dlt.common.pipeline import LoadInfo


@dataclass(frozen=True)
class LoadedTable:
    """One row of the load report: what one load package put into one table."""

    pipeline: str
    table: str
    load_id: str
    rows_loaded: int | None
    rows_in_table: int | None
    duration_seconds: float

    def as_row(self) -> dict[str, Any]:
        """The artifact row; `None` shows as "n/a" (not known for this destination or package)."""
        return {
            "pipeline": self.pipeline,
            "table": self.table,
            "load id": self.load_id,
            "rows loaded": _or_na(self.rows_loaded),
            "rows in table": _or_na(self.rows_in_table),
            "duration (s)": round(self.duration_seconds, 1),
        }


@dataclass(frozen=True)
class LoadSummary:
    """What one pipeline run loaded, built by the run engine (`utils.run_engine`).

    Attributes:
        pipeline: The dlt pipeline name.
        destination: Destination type, e.g. `duckdb` or `snowflake`.
        dataset: Dataset (schema) the tables live in.
        load_ids: dlt load ids of the packages this run's new extraction loaded.
        row_counts: Rows the new extraction loaded per table, dlt's own tables left out.
        finished_load_ids: Packages an earlier, failed or killed try left behind, loaded first.
        rows_per_load: Rows per table in each load package (new and finished), where dlt knows them.
        rows_in_table: Rows each loaded table holds after the run (SQL destinations only).
        duration_seconds: Wall time of the run.
        notes: What the engine decided on the way (packages repaired, tables recreated...).
        reconciled_deletes: Rows a key reconciliation deleted after the load (gone upstream), per
            table; None when none ran (utils/key_reconciliation.py).
    """

    pipeline: str
    destination: str
    dataset: str
    load_ids: list[str] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)
    finished_load_ids: list[str] = field(default_factory=list)
    rows_per_load: dict[str, dict[str, int]] = field(default_factory=dict)
    rows_in_table: dict[str, int] = field(default_factory=dict)
    duration_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    reconciled_deletes: dict[str, int] | None = None

    @property
    def total_rows(self) -> int:
        """Rows the new extraction loaded across all tables (`rows_loaded` adds finished packages)."""
        return sum(self.row_counts.values())

    @property
    def all_load_ids(self) -> list[str]:
        """Every package the run completed: the finished earlier ones first, then the new ones."""
        return list(dict.fromkeys([*self.finished_load_ids, *self.load_ids]))

    @classmethod
    def from_load_info(cls, info: LoadInfo) -> LoadSummary:
        """Build a summary of a plain `pipeline.run()` from dlt's load info and last trace.

        Args:
            info: What `pipeline.run()` returned.

        Returns:
            The summary (no finished packages, table sizes or duration: the engine adds those).
        """
        from utils.key_reconciliation import reconciled_deletes  # imported late: flows load without dlt

        per_load = rows_per_load(info.pipeline, list(info.loads_ids))
        counts: dict[str, int] = {}
        for tables in per_load.values():
            for table, rows in tables.items():
                counts[table] = counts.get(table, 0) + rows
        return cls(
            pipeline=info.pipeline.pipeline_name,
            destination=info.destination_type.rsplit(".", 1)[-1],
            dataset=info.dataset_name,
            load_ids=list(info.loads_ids),
            row_counts=dict(sorted(counts.items())),
            rows_per_load=per_load,
            reconciled_deletes=reconciled_deletes(info.pipeline),
        )

    @property
    def rows_loaded(self) -> dict[str, int]:
        """Rows per table across every package this run loaded: finished earlier ones and new ones.

        `row_counts` holds the new extraction's only. Packages whose counts are unknown (see
        `tables`) are left out; `lines` names them.
        """
        totals: dict[str, int] = {}
        for load_id in self.all_load_ids:
            for table, rows in self.rows_per_load.get(load_id, {}).items():
                totals[table] = totals.get(table, 0) + rows
        return dict(sorted(totals.items()))

    def lines(self) -> list[str]:
        """Human-readable lines: one headline, then one per table.

        The headline counts the rows of every package the run loaded, packages an earlier try left
        behind included, and says which of them it finished for that try.
        """
        per_table = self.rows_loaded
        loads = ", ".join(self.all_load_ids) or "none (nothing new)"
        said: list[str] = []
        if self.finished_load_ids:
            said.append(f"finished for an earlier try: {', '.join(self.finished_load_ids)}")
            if not self.load_ids:
                said.append("nothing new extracted")
        unknown = [load_id for load_id in self.all_load_ids if load_id not in self.rows_per_load]
        if unknown:
            said.append(f"rows of {', '.join(unknown)} not known")
        head = (
            f"{self.pipeline}: {sum(per_table.values())} rows into {self.destination} dataset "
            f"'{self.dataset}' (load id {'; '.join([loads, *said])})"
        )
        lines = [head] + [f"  {table}: {rows} rows" for table, rows in per_table.items()]
        if self.reconciled_deletes is not None:
            deleted = ", ".join(f"{t} {n}" for t, n in sorted(self.reconciled_deletes.items())) or "none"
            lines.append(f"  key reconciliation: rows deleted upstream removed: {deleted}")
        return lines

    def tables(self) -> list[LoadedTable]:
        """The load report: one row per table and load package, finished earlier packages first.

        `rows_loaded` is dlt's count of the rows in the package (from the normalise step);
        `rows_in_table` is what the table holds once the run is over. A merge that deletes rows
        (soft deletes, archived contacts) loads them but leaves fewer in the table. A package whose
        counts are unknown (its process died before dlt saved the trace) shows as "(unknown)".
        """
        rows = [
            LoadedTable(
                self.pipeline,
                table,
                load_id,
                self.rows_per_load[load_id][table],
                self.rows_in_table.get(table),
                self.duration_seconds,
            )
            for load_id in self.all_load_ids
            for table in sorted(self.rows_per_load.get(load_id, {}))
        ]
        rows += [
            LoadedTable(self.pipeline, "(unknown)", load_id, None, None, self.duration_seconds)
            for load_id in self.all_load_ids
            if load_id not in self.rows_per_load
        ]
        return rows or [LoadedTable(self.pipeline, "(nothing new)", "-", 0, None, self.duration_seconds)]


def rows_per_load(pipeline: Any, load_ids: list[str]) -> dict[str, dict[str, int]]:
    """Rows per table in each of `load_ids`, from the normalise metrics in the pipeline's last trace.

    The one place rows loaded are counted. A failed try's trace is saved in the working directory,
    so a retry still knows the counts of the package it finishes. dlt's own tables are left out.

    Args:
        pipeline: The dlt pipeline (its `last_trace` is read).
        load_ids: The packages to count.

    Returns:
        Rows by load id, then by table; packages the trace does not know are missing.
    """
    trace = getattr(pipeline, "last_trace", None)
    wanted = set(load_ids)
    counts: dict[str, dict[str, int]] = {}
    for step in getattr(trace, "steps", None) or []:
        metrics = getattr(step.step_info, "metrics", None) if step.step == "normalize" else None
        for load_id, per_load in (metrics or {}).items():
            if load_id not in wanted or not per_load:
                continue
            tables = per_load[0].get("table_metrics", {})
            counts[load_id] = {t: m.items_count for t, m in tables.items() if not t.startswith("_dlt")}
    return counts


def _or_na(value: int | None) -> int | str:
    return "n/a" if value is None else value
