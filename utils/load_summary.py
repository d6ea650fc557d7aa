"""What a pipeline run loaded, in a form flows can log and the main job can print."""

from __future__ import annotations

from dataclasses import dataclass, field

from dlt.common.pipeline import LoadInfo

from utils.key_reconciliation import reconciled_deletes


@dataclass(frozen=True)
class LoadSummary:
    """Rows loaded per table by one pipeline run.

    Attributes:
        pipeline: The dlt pipeline name.
        destination: Destination type, e.g. `duckdb` or `snowflake`.
        dataset: Dataset (schema) the tables live in.
        load_ids: dlt load ids of the packages this run loaded.
        row_counts: Rows loaded per table in this run, dlt's own bookkeeping tables left out.
        reconciled_deletes: Rows a key reconciliation deleted after the load (gone upstream), per
            table; None when none ran (utils/key_reconciliation.py).
    """

    pipeline: str
    destination: str
    dataset: str
    load_ids: list[str] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)
    reconciled_deletes: dict[str, int] | None = None

    @property
    def total_rows(self) -> int:
        """Rows loaded across all tables."""
        return sum(self.row_counts.values())

    @classmethod
    def from_load_info(cls, info: LoadInfo) -> LoadSummary:
        """Build the summary from dlt's load info (row counts come from the pipeline's last trace).

        Args:
            info: What `pipeline.run()` returned.

        Returns:
            The summary.
        """
        trace = getattr(info.pipeline, "last_trace", None)
        normalize_info = trace.last_normalize_info if trace is not None else None
        counts = dict(normalize_info.row_counts) if normalize_info is not None else {}
        return cls(
            pipeline=info.pipeline.pipeline_name,
            destination=info.destination_type.rsplit(".", 1)[-1],
            dataset=info.dataset_name,
            load_ids=list(info.loads_ids),
            row_counts={t: n for t, n in sorted(counts.items()) if not t.startswith("_dlt")},
            reconciled_deletes=reconciled_deletes(info.pipeline),
        )

    def lines(self) -> list[str]:
        """Human-readable lines: one headline, then one per table."""
        loads = ", ".join(self.load_ids) or "none (nothing new)"
        head = (
            f"{self.pipeline}: {self.total_rows} rows into {self.destination} dataset "
            f"'{self.dataset}' (load id {loads})"
        )
        lines = [head] + [f"  {table}: {rows} rows" for table, rows in self.row_counts.items()]
        if self.reconciled_deletes is not None:
            deleted = ", ".join(f"{t} {n}" for t, n in sorted(self.reconciled_deletes.items())) or "none"
            lines.append(f"  key reconciliation: rows deleted upstream removed: {deleted}")
        return lines
