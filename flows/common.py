"""What every flow shares: the retry policy, the run lock, progress logging and the load report.

Kept here, not in each flow, so that a new flow gets the same behaviour by importing it. A flow's
task body is `run_and_report(run, **options)`, which:

* holds the pipeline's lock (`flows/lock.py`), so two runs of one pipeline never overlap;
* logs dlt's progress (rows per resource, files, load jobs) through Prefect's run logger while the
  pipeline runs - dlt's own logger does not propagate;
* logs the load summary and publishes a table artifact (pipeline, table, load id, rows loaded,
  rows the table holds afterwards, duration), keyed `<pipeline>-load` so runs line up in the UI.

dlt keeps pending load packages in the pipeline's working directory (`DLT_DATA_DIR`, default
`~/.dlt`, under `pipelines/<name>`). A Prefect task retry runs in the same process, on the same
machine, so it finds them there; `run_pipeline` loads them before extracting anything new, and the
report lists them beside the new load. A later flow run finds them too as long as it runs where
`DLT_DATA_DIR` persists (the process worker's disk; a volume for container work pools). Where it
does not, dlt restores the state from the destination and the run extracts the lost package's
rows again: the merges (products, hubspot) absorb that, and exchange_rates skips rows already in
the bucket.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import dlt
from dlt.common.configuration.container import Container
from dlt.common.exceptions import TerminalException
from dlt.common.pipeline import LoadInfo, PipelineContext, SupportsPipeline
from dlt.common.runtime.collector import LogCollector
from dlt.common.schema.exceptions import DataValidationError
from dlt.common.storages.exceptions import LoadPackageNotFound
from prefect import Flow, Task, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.client.schemas.objects import State, TaskRun

from flows.lock import pipeline_lock
from utils.destinations import SQL_DESTINATIONS, find_cause
from utils.errors import PermanentPipelineError
from utils.load_summary import LoadSummary

_log = logging.getLogger(__name__)

# Growing delays between task retries (seconds): a blip clears in 10 s, an API restart in a minute
# or two, a longer outage is worth an alert rather than more waiting.
RETRY_DELAYS_SECONDS: list[float] = [10, 30, 90]
RETRIES = len(RETRY_DELAYS_SECONDS)

# dlt progress lines go to the run log this often while a step runs (and once when it ends).
PROGRESS_LOG_PERIOD_SECONDS = 30.0

# dlt errors that no retry can fix: missing or invalid configuration, a destination that refuses
# the SQL or the credentials for good (both `TerminalException`), and a schema contract violation.
_PERMANENT_DLT_ERRORS: tuple[type[BaseException], ...] = (TerminalException, DataValidationError)


def retry_unless_permanent(task: Task[..., object], task_run: TaskRun, state: State[object]) -> bool:
    """Prefect retry condition: retry unless the failure cannot heal by waiting.

    Bad credentials, a rejected request, a malformed payload, a schema contract violation or a
    destination that refuses the data fail the same way on every retry, so those go straight to
    failure (and the alert) instead of waiting two minutes. That covers our own
    `PermanentPipelineError`s (`ConfigurationError`, `SchemaDriftError`, ...) anywhere in the chain
    of causes, and dlt's terminal errors that reach the flow unwrapped.

    Args:
        task: The task being retried.
        task_run: Its run.
        state: The failed state.

    Returns:
        True to retry.
    """
    try:
        state.result()
    except PermanentPipelineError:
        return False
    except BaseException as exc:  # any other failure may be transient
        if find_cause(exc, PermanentPipelineError) is not None:
            return False
        return not any(find_cause(exc, kind) is not None for kind in _PERMANENT_DLT_ERRORS)
    return True


def run_and_report(run: Callable[..., LoadInfo], **run_options: Any) -> LoadSummary:
    """Run a pipeline's `run()` under its lock, log progress and summary, publish the load artifact.

    The body of every load task. A retried task that finds load packages left by its failed try
    finishes them first (`run_pipeline` does that); the report names them. If the failed try was a
    full refresh whose package is among them (`run(full_refresh=True)`), finishing that package
    completes the refresh, so the retry runs incrementally instead of dropping and extracting
    everything a second time.

    Args:
        run: The pipeline module's `run` function (its module must also define `pipeline()`).
        **run_options: Passed to `run` (e.g. `full_refresh=True`, a backfill's dates).

    Returns:
        What the run's new extraction loaded.
    """
    logger = get_run_logger()
    module = sys.modules[run.__module__]
    make_pipeline: Callable[[], dlt.Pipeline] = module.pipeline
    name = getattr(module, "PIPELINE_NAME", None) or make_pipeline().pipeline_name
    with pipeline_lock(name):
        before = make_pipeline()
        # A package a killed run left both extracted and normalised is listed twice; once is enough.
        pending = list(
            dict.fromkeys([*before.list_extracted_load_packages(), *before.list_normalized_load_packages()])
        )
        pending_counts = _normalised_row_counts(before, pending)
        if pending:
            logger.info(
                "%s: finishing %d load package(s) left by an earlier try before extracting: %s",
                name,
                len(pending),
                ", ".join(pending),
            )
            if run_options.get("full_refresh") and _has_refresh_package(before, pending):
                logger.info("%s: the pending package is the full refresh; this try runs incrementally", name)
                run_options = {**run_options, "full_refresh": False}
        started = time.monotonic()
        with dlt_progress(logger):
            info = run(**run_options)
        duration = time.monotonic() - started
        summary = LoadSummary.from_load_info(info)
        log_load_summary(summary)
        # Counted while the lock is held, so the table sizes are this run's.
        counts = {**pending_counts, **_normalised_row_counts(info.pipeline, summary.load_ids)}
        loads = list(dict.fromkeys([*pending, *summary.load_ids]))
        publish_load_report(info.pipeline, summary, loads, counts, duration)
    return summary


def log_load_summary(summary: LoadSummary) -> None:
    """Log what a pipeline run loaded through Prefect's run logger.

    dlt's own logger does not propagate, so without this nothing of the load reaches Prefect.
    """
    logger = get_run_logger()
    for line in summary.lines():
        logger.info(line)


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


def publish_load_report(
    pipeline: SupportsPipeline,
    summary: LoadSummary,
    load_ids: list[str],
    row_counts: dict[str, dict[str, int]],
    duration_seconds: float,
) -> list[LoadedTable]:
    """Publish the run's table artifact and return its rows.

    `rows loaded` is dlt's count of the rows in the load package (from the normalise step);
    `rows in table` is what the table holds once the run is over, counted in the destination (SQL
    destinations only). A merge that deletes rows (soft deletes, archived contacts) loads them but
    leaves fewer in the table.

    Args:
        pipeline: The dlt pipeline that ran.
        summary: The run's summary.
        load_ids: Every load this run completed: finished earlier packages first, then the new one.
        row_counts: Rows per table per load id, from dlt's normalise metrics, where known.
        duration_seconds: Wall time of the pipeline run.

    Returns:
        The rows published, one per table and load.
    """
    tables = sorted({table for counts in row_counts.values() for table in counts})
    in_table = _table_row_counts(pipeline, tables, summary.destination)
    rows = [
        LoadedTable(
            pipeline=summary.pipeline,
            table=table,
            load_id=load_id,
            rows_loaded=row_counts.get(load_id, {}).get(table),
            rows_in_table=in_table.get(table),
            duration_seconds=duration_seconds,
        )
        for load_id in load_ids
        for table in sorted(row_counts.get(load_id, {}))
    ]
    # A package whose counts are unknown (its process died before dlt saved the trace) still shows.
    rows += [
        LoadedTable(summary.pipeline, "(unknown)", load_id, None, None, duration_seconds)
        for load_id in load_ids
        if load_id not in row_counts
    ]
    artifact: list[dict[str, Any]] = [r.as_row() for r in rows] or [
        LoadedTable(summary.pipeline, "(nothing new)", "-", 0, None, duration_seconds).as_row()
    ]
    description = "\n".join(["### " + summary.lines()[0], "", *_report_notes(summary, load_ids)])
    create_table_artifact(table=artifact, key=artifact_key(summary.pipeline), description=description)
    return rows


def artifact_key(pipeline_name: str) -> str:
    """The artifact key of a pipeline's load report (Prefect keys allow lower case, digits, dashes)."""
    return "".join(c if c.isalnum() else "-" for c in pipeline_name.lower()) + "-load"


def _report_notes(summary: LoadSummary, load_ids: list[str]) -> list[str]:
    earlier = [i for i in load_ids if i not in summary.load_ids]
    notes = [f"Destination `{summary.destination}`, dataset `{summary.dataset}`."]
    if earlier:
        notes.append(f"Finished {len(earlier)} load package(s) left by an earlier try: {', '.join(earlier)}.")
    if summary.reconciled_deletes is not None:
        deleted = ", ".join(f"`{t}` {n}" for t, n in sorted(summary.reconciled_deletes.items())) or "none"
        notes.append(
            f"Key reconciliation ran: rows deleted upstream removed from the destination: {deleted}."
        )
    return notes


def _or_na(value: int | None) -> int | str:
    return "n/a" if value is None else value


def _normalised_row_counts(pipeline: SupportsPipeline, load_ids: list[str]) -> dict[str, dict[str, int]]:
    """Rows per table in each of `load_ids`, from the normalise metrics in the pipeline's last trace.

    A failed try's trace is saved in the working directory, so a retry still knows the row counts
    of the package it finishes. dlt's own tables are left out.
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


def _table_row_counts(pipeline: SupportsPipeline, tables: list[str], destination: str) -> dict[str, int]:
    """Rows each table holds now, counted in a SQL destination; empty for other kinds."""
    if destination not in SQL_DESTINATIONS or not tables or not isinstance(pipeline, dlt.Pipeline):
        return {}
    counts: dict[str, int] = {}
    with pipeline.sql_client() as client:
        if not client.has_dataset():
            return counts
        for table in tables:
            query = f"SELECT COUNT(*) FROM {client.make_qualified_table_name(table)}"  # noqa: S608 - name from dlt's schema
            try:
                result = client.execute_sql(query) or []
            except Exception as exc:  # a table the load dropped, or never created
                _log.debug("not counting %s: %s", table, exc)
                continue
            counts[table] = int(result[0][0])
    return counts


def _has_refresh_package(pipeline: dlt.Pipeline, load_ids: list[str]) -> bool:
    """Whether a pending package drops or truncates tables, i.e. was extracted by a full refresh."""
    for load_id in load_ids:
        try:
            state = pipeline.get_load_package_state(load_id)  # normalised packages
        except LoadPackageNotFound:
            state = pipeline._get_normalize_storage().extracted_packages.get_load_package_state(load_id)
        if state.get("dropped_tables") or state.get("truncated_tables"):
            return True
    return False


class _PeriodicLogCollector(LogCollector):
    """dlt's log collector, without the empty line it logs as each step starts."""

    def _start(self, step: str) -> None:
        super()._start(step)
        # The first line of a step comes after one period (or when the step ends), not at once.
        self.last_log_time = self._clock()


@contextmanager
def dlt_progress(
    logger: logging.Logger | logging.LoggerAdapter[Any], period_seconds: float = PROGRESS_LOG_PERIOD_SECONDS
) -> Iterator[None]:
    """Make every dlt pipeline created in this thread inside the block report progress to `logger`.

    Pipelines are built inside `run()`, out of reach of the flow; dlt activates each new pipeline
    in the thread's pipeline context, so the collector is attached there. dlt then logs the extract,
    normalise and load counters every `period_seconds` and when each step ends.

    Args:
        logger: Where the progress lines go (Prefect's run logger in a flow).
        period_seconds: Seconds between progress lines while a step runs.
    """
    context = Container()[PipelineContext]
    original = context.activate

    def activate(pipeline: SupportsPipeline) -> None:
        if isinstance(pipeline, dlt.Pipeline):
            pipeline.collector = _PeriodicLogCollector(
                log_period=period_seconds,
                # A LoggerAdapter (Prefect's run logger) works: dlt checks for both kinds.
                logger=cast(logging.Logger, logger),
                dump_system_stats=False,
            )
        original(pipeline)

    had_own = "activate" in vars(context)
    context.activate = activate  # type: ignore[method-assign]
    try:
        yield
    finally:
        if had_own:  # an enclosing block's hook
            context.activate = original  # type: ignore[method-assign]
        else:
            del context.activate  # back to the class's method


def all_flows() -> dict[str, Flow[..., object]]:
    """Every flow defined in the `flows` package, by module name, in name order.

    New flow modules are picked up without registration, so the main job and the tests cover them.
    """
    import flows

    found: dict[str, Flow[..., object]] = {}
    for info in sorted(pkgutil.iter_modules(flows.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"flows.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, Flow) and obj.fn.__module__ == module.__name__:
                found[info.name] = obj
    return found
