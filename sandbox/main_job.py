"""The main job: every pipeline, through its Prefect flow, against the sandbox, into local DuckDB.

`./dev demo` runs this. It starts the sandbox (local stand-ins for every upstream system), points
each source at it, selects DuckDB as the destination, and runs every flow in `flows/` for real under
Prefect - twice: a first (full) run, then, after a simulated day of upstream changes, a second
(incremental) one. It prints what loaded. Nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import cast

import duckdb
from prefect.client.schemas.objects import State

from sandbox import Sandbox
from sandbox.prefect_api import PrefectApiServer
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


# Written into the dlt working directory the demo creates beside a `--warehouse` of the user's
# choosing: only a directory carrying it (or the repository's own `.local/dlt`) is ever emptied.
DEMO_MARK = ".created-by-data-pipelines-demo"

# Bytes 8-11 of every DuckDB database file (its header's magic number).
DUCKDB_MAGIC = b"DUCK"


def dlt_data_dir(warehouse: Path) -> Path:
    """The dlt working directory the demo uses for `warehouse`: `dlt/` beside it."""
    return warehouse.parent / "dlt"


def reset_refusal(warehouse: Path) -> str | None:
    """Why the demo must not empty what `--warehouse` points at, or None when it may.

    The demo deletes the DuckDB file (and its WAL) and the dlt working directory beside it. That is
    safe for the repository's own `.local/` and for paths the demo created; anything else may be a
    user's data: a file that is not a DuckDB database, a directory, or a `dlt/` folder the demo did
    not create (`./dev demo --warehouse ~/x.duckdb` must never delete `~/dlt`).
    """
    if warehouse.is_dir():
        return f"{warehouse} is a directory; --warehouse takes a DuckDB file"
    if warehouse.exists() and not _is_duckdb_file(warehouse):
        return f"{warehouse} exists and is not a DuckDB database file"
    state = dlt_data_dir(warehouse)
    if warehouse == DEFAULT_WAREHOUSE or not state.exists():
        return None
    if not (state / DEMO_MARK).is_file():
        return f"{state} exists and was not created by the demo (the demo keeps its dlt state there)"
    return None


def _is_duckdb_file(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(12)[8:12] == DUCKDB_MAGIC
    except OSError:
        return False


def reset_local_state(warehouse: Path) -> None:
    """Start from an empty warehouse and fresh dlt state: the sandbox itself starts afresh each time.

    Keeping either across runs of the main job would compare a new sandbox with an old copy of
    another one's data. Call only when `reset_refusal(warehouse)` is None.
    """
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    for path in (warehouse, warehouse.with_name(warehouse.name + ".wal")):
        path.unlink(missing_ok=True)
    state = dlt_data_dir(warehouse)
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir()
    (state / DEMO_MARK).write_text("dlt working directory of `./dev demo`; emptied by its next run.\n")


def destination_overrides(environ: Mapping[str, str]) -> list[str]:
    """The variables in `environ` that would point dlt's DuckDB destination at another file, sorted."""
    prefixes = ("DESTINATION__DUCKDB__CREDENTIALS", "DESTINATION__CREDENTIALS")
    return sorted(name for name in environ if name.upper().startswith(prefixes))


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
        "DLT_DATA_DIR": str(dlt_data_dir(warehouse)),
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


# What a second run loads into a table, by the table's write disposition (dlt's term).
SECOND_RUN_BY_DISPOSITION = {
    "replace": "the whole table again (write disposition replace)",
    "append": "only the rows new upstream (write disposition append)",
    "merge": "only new, changed and deleted rows (write disposition merge)",
}


def write_dispositions(pipelines_dir: Path, outcomes: list[FlowOutcome]) -> dict[str, dict[str, str]]:
    """The write disposition of every table the flows loaded, from each pipeline's dlt schema.

    Args:
        pipelines_dir: dlt's pipelines directory (`<DLT_DATA_DIR>/pipelines`) the flows ran in.
        outcomes: The flows' outcomes (both passes may be given); those that loaded nothing are
            left out.

    Returns:
        By pipeline name, each loaded table's disposition (`replace`, `append` or `merge`, dlt's
        `TWriteDisposition`) by table name.
    """
    import dlt  # imported here: the rest of the main job needs only the flows' results
    from dlt.common.schema.utils import get_write_disposition

    found: dict[str, dict[str, str]] = {}
    for outcome in outcomes:
        if outcome.summary is None or not outcome.summary.row_counts:
            continue
        name = outcome.summary.pipeline
        schema = dlt.attach(name, pipelines_dir=str(pipelines_dir)).default_schema
        tables = found.setdefault(name, {})
        for table in outcome.summary.row_counts:
            tables[table] = get_write_disposition(schema.tables, table)
    return found


def second_run_notes(dispositions: dict[str, dict[str, str]]) -> list[str]:
    """What the second run loaded, one line per write disposition, naming where it applies.

    A pipeline whose tables all share a disposition is named; otherwise each of its tables is
    (`pipeline: table`).

    Args:
        dispositions: As `write_dispositions` returns them.

    Returns:
        Lines of the summary's footnote, replace first, then append, then merge.
    """
    named: dict[str, list[str]] = {}
    for pipeline, tables in sorted(dispositions.items()):
        if len(set(tables.values())) == 1:
            named.setdefault(next(iter(tables.values())), []).append(pipeline)
        else:
            for table, disposition in sorted(tables.items()):
                named.setdefault(disposition, []).append(f"{pipeline}: {table}")
    order = [*SECOND_RUN_BY_DISPOSITION, *sorted(set(named) - set(SECOND_RUN_BY_DISPOSITION))]
    return [
        f"          {', '.join(named[d])} - {SECOND_RUN_BY_DISPOSITION.get(d, f'write disposition {d}')};"
        for d in order
        if d in named
    ]


def render(
    first: list[FlowOutcome],
    second: list[FlowOutcome],
    warehouse: Path,
    dispositions: dict[str, dict[str, str]] | None = None,
) -> str:
    """The summary printed at the end of the main job: both passes side by side.

    Args:
        first: The first pass's outcomes, one per flow.
        second: The second pass's, in the same order.
        warehouse: The DuckDB file both loaded into (read for the `in table` column).
        dispositions: Each loaded table's write disposition by pipeline and table (see
            `write_dispositions`), which says what each second run loaded; without them the
            footnote does not say which pipeline loaded what.
    """
    lines = ["", "Main job summary", "================", ""]
    header = f"{'pipeline':<16} {'status':<11} {'table':<36} {'1st run':>9} {'2nd run':>9} {'in table':>9}"
    lines += [header, "-" * len(header)]
    for before, after in zip(first, second, strict=True):
        status = before.status if before.status != "Completed" else after.status
        tables = dict.fromkeys(
            [
                *(before.summary.row_counts if before.summary else {}),
                *(after.summary.row_counts if after.summary else {}),
            ]
        )
        summary = after.summary or before.summary
        if summary is None or not tables:
            note = before.message or after.message or "nothing to load"
            lines.append(f"{before.flow:<16} {status:<11} {note}")
            continue
        totals = table_totals(warehouse, summary.dataset, list(tables))
        for i, table in enumerate(tables):
            name, shown = (before.flow, status) if i == 0 else ("", "")
            one = before.summary.row_counts.get(table, 0) if before.summary else 0
            two = after.summary.row_counts.get(table, 0) if after.summary else 0
            qualified = f"{summary.dataset}.{table}"
            lines.append(f"{name:<16} {shown:<11} {qualified:<36} {one:>9} {two:>9} {totals[table]:>9}")
    example = next(
        (
            f"{o.summary.dataset}.{next(iter(o.summary.row_counts))}"
            for o in first
            if o.summary and o.summary.row_counts
        ),
        "information_schema.tables",
    )
    query = f"select * from {example} limit 5"
    notes = second_run_notes(dispositions or {})
    lines += [
        "",
        "1st run:  rows the first run of each flow loaded (a full load);",
        "2nd run:  rows the second run loaded, after a simulated day of upstream changes"
        + (":" if notes else ";"),
        *notes,
        "in table: rows each table holds now (after merges and deletions).",
        "",
        f"DuckDB file: {warehouse}",
        "Query it, e.g.:",
        # Absolute paths, so that the line works from any directory.
        f'  {sys.executable} -c "import duckdb; '
        f"duckdb.connect('{warehouse.resolve()}', read_only=True).sql('{query}').show()\"",
        "",
    ]
    return "\n".join(lines)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run the main job; returns the process exit code (1 if any flow failed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--warehouse", type=Path, default=DEFAULT_WAREHOUSE, help="DuckDB file to load into")
    args = parser.parse_args(argv)
    warehouse: Path = args.warehouse.resolve()
    overriding = destination_overrides(os.environ)
    if overriding:
        # dlt's own settings win over ours (`local.duckdb_path`), so the flows would load into the
        # file they name - which the demo does not reset, and must never delete.
        print(
            f"error: {', '.join(overriding)} is set, which would send the demo's data to the DuckDB "
            "file it names. The demo loads a fresh file of its own: unset it, or pass "
            "`--warehouse PATH` to choose that file (it is emptied first).",
            file=sys.stderr,
        )
        return 2
    refusal = reset_refusal(warehouse)
    if refusal:
        print(
            f"error: {refusal}. The demo empties the file it loads into and the dlt state beside it, "
            "so it leaves this alone: pass a `--warehouse` path in a new or empty folder.",
            file=sys.stderr,
        )
        return 2
    reset_local_state(warehouse)

    # SIGTERM (a supervisor, `kill`) unwinds like Ctrl-C, so the servers below are stopped too.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # The Prefect server is entered first and so stopped last: an interrupted flow run reports its
    # crash, and Prefect sends its last logs, while it still answers (sandbox.prefect_api).
    with PrefectApiServer() as prefect_api, prefect_api.selected(), Sandbox() as sandbox:
        os.environ.update(local_environment(sandbox, warehouse))
        first = run_all_flows()
        # A day passes upstream: the second pass shows each pipeline loading only what changed.
        sandbox.simulate_activity()
        second = run_all_flows()
    dispositions = write_dispositions(dlt_data_dir(warehouse) / "pipelines", first + second)
    print(render(first, second, warehouse, dispositions))
    failed = [o.flow for o in first + second if o.status != "Completed"]
    if failed:
        print(f"Failed: {', '.join(failed)} - see the flow logs above.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
