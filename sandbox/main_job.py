"""The main job: every pipeline, through its Prefect flow, against the sandbox, into local DuckDB.

`./dev demo` runs this. It starts the sandbox (local stand-ins for every upstream system), points
each source at it, selects DuckDB as the destination, runs every flow in `flows/` for real under
Prefect, and prints what loaded. Nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import duckdb
from prefect.client.schemas.objects import State

from sandbox import Sandbox
from utils.load_summary import LoadSummary

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WAREHOUSE = REPO_ROOT / ".local" / "warehouse.duckdb"


@dataclass
class FlowOutcome:
    """How one flow run ended."""

    flow: str
    status: str
    summary: LoadSummary | None
    message: str = ""


def local_environment(sandbox: Sandbox, warehouse: Path) -> dict[str, str]:
    """Environment that points every pipeline at the sandbox and the local DuckDB file.

    Args:
        sandbox: The running sandbox.
        warehouse: The DuckDB file to load into.

    Returns:
        Variables to merge into `os.environ` before the flows run.
    """
    return {
        **sandbox.env(),
        "DLT__DESTINATION": "duckdb",
        "LOCAL__DUCKDB_PATH": str(warehouse),
        # dlt's working dirs (state, pending packages) live beside the warehouse, so deleting
        # `.local/` resets both together and state never outlives the data it describes.
        "DLT_DATA_DIR": str(warehouse.parent / "dlt"),
        # Offline machine: Prefect's temporary server would otherwise log failed telemetry calls.
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }


def run_all_flows() -> list[FlowOutcome]:
    """Run every flow in `flows/` once, each to completion or failure, and collect the outcomes."""
    from flows.common import all_flows

    outcomes = []
    for name, flow in all_flows().items():
        state = cast(State[object], flow(return_state=True))
        if state.is_completed():
            result = state.result(raise_on_failure=False)
            summary = result if isinstance(result, LoadSummary) else None
            outcomes.append(FlowOutcome(name, state.name or "Completed", summary))
        else:
            outcomes.append(FlowOutcome(name, state.name or "Failed", None, state.message or ""))
    return outcomes


def table_totals(warehouse: Path, dataset: str, tables: list[str]) -> dict[str, int]:
    """Row counts of `tables` in `dataset` of the DuckDB file, read after the load."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {
            table: con.execute(f'select count(*) from "{dataset}"."{table}"').fetchone()[0]  # type: ignore[index]
            for table in tables
        }


def render(outcomes: list[FlowOutcome], warehouse: Path) -> str:
    """The summary printed at the end of the main job."""
    lines = ["", "Main job summary", "================", ""]
    header = f"{'pipeline':<16} {'status':<11} {'table':<36} {'loaded':>9} {'in table':>9}"
    lines += [header, "-" * len(header)]
    for outcome in outcomes:
        summary = outcome.summary
        if summary is None or not summary.row_counts:
            note = outcome.message or "nothing new to load"
            lines.append(f"{outcome.flow:<16} {outcome.status:<11} {note}")
            continue
        totals = table_totals(warehouse, summary.dataset, list(summary.row_counts))
        for i, (table, rows) in enumerate(summary.row_counts.items()):
            name, status = (outcome.flow, outcome.status) if i == 0 else ("", "")
            qualified = f"{summary.dataset}.{table}"
            lines.append(f"{name:<16} {status:<11} {qualified:<36} {rows:>9} {totals[table]:>9}")
    example = next(
        (
            f"{o.summary.dataset}.{next(iter(o.summary.row_counts))}"
            for o in outcomes
            if o.summary and o.summary.row_counts
        ),
        "information_schema.tables",
    )
    rel = os.path.relpath(warehouse)
    query = f"select * from {example} limit 5"
    lines += [
        "",
        f"DuckDB file: {warehouse}",
        "Query it, e.g.:",
        f'  uv run python -c "import duckdb; '
        f"duckdb.connect('{rel}', read_only=True).sql('{query}').show()\"",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the main job; returns the process exit code (1 if any flow failed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--warehouse", type=Path, default=DEFAULT_WAREHOUSE, help="DuckDB file to load into")
    args = parser.parse_args(argv)
    warehouse: Path = args.warehouse.resolve()
    warehouse.parent.mkdir(parents=True, exist_ok=True)

    with Sandbox() as sandbox:
        os.environ.update(local_environment(sandbox, warehouse))
        outcomes = run_all_flows()
    print(render(outcomes, warehouse))
    failed = [o.flow for o in outcomes if o.summary is None and o.status != "Completed"]
    if failed:
        print(f"Failed: {', '.join(failed)} - see the flow logs above.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
