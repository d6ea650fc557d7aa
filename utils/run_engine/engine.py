"""The run engine: how every pipeline's `run()` drives dlt, from pre-flight checks to the load report.

`run_pipeline(pipeline, source, **options)` is the whole sequence, in order:

1. Check the destination's settings (missing credentials fail before anything is extracted).
2. Repair the working directory: a package a killed run left both extracted and normalised, and
   the leftovers of a stopped extraction or normalisation that no run would ever use.
3. Finish load packages an earlier try left pending (normalise and load them), so they are never
   lost or loaded twice. A pending full-refresh package completes the refresh: a requested refresh
   is then not repeated.
4. Recreate tables dropped in the destination behind dlt's back: their resources are reloaded from
   scratch (dlt's `refresh="drop_resources"` for those resources only), so the table is complete again.
5. Extract, normalise and load the new data (`pipeline.run`).
6. Translate a failure into one error a person can act on, permanent or transient by the rule in
   `utils.run_engine.failures`, and abort a package the destination rejected for good. A stop by a
   signal (Ctrl-C, SIGTERM) is no failure: it becomes a `RunStopped` saying which signal stopped
   which step and what happens to the data, and every pending package is kept for the next run.
7. Report: rows per table and load package, rows each table holds now, duration.

Messages and dlt's progress go to the logger a flow hands over with `report_to`.
"""

from __future__ import annotations

import inspect
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dlt
from dlt.common.configuration.exceptions import ConfigFieldMissingException, InvalidNativeValue
from dlt.common.destination.exceptions import DestinationTerminalException, DestinationUndefinedEntity
from dlt.common.exceptions import DltException
from dlt.common.pipeline import LoadInfo
from dlt.common.schema.exceptions import DataValidationError
from dlt.common.schema.utils import get_root_table, has_table_seen_data
from dlt.common.storages.exceptions import LoadPackageNotFound
from dlt.pipeline.exceptions import PipelineStepFailed
from dlt.sources import DltResource, DltSource

from utils import gc_settings
from utils.config_keys import listing, missing_keys, placeholders_refused, secret_keys, where_to_set
from utils.destinations import SQL_DESTINATIONS, check_destination
from utils.errors import (
    ConfigurationError,
    DestinationRejectedError,
    DeterministicError,
    PipelineError,
    RunStopped,
    SchemaDriftError,
    find_cause,
)
from utils.load_summary import LoadSummary, rows_per_load
from utils.run_engine import dlt_private, progress
from utils.run_engine.destination_failures import destination_failure
from utils.run_engine.failures import chain, first_cause_line, is_permanent, stop_signal, table_of
from utils.sql_connection import ENCODE_HINT, refuse_ambiguous_url
from utils.vault_provider import describe_missing

Source = Callable[..., Any] | DltSource | DltResource

_KEPT = "Pending load packages are kept and finished by the next run."


def run_pipeline(pipeline: dlt.Pipeline, source: Source, **run_options: Any) -> LoadSummary:
    """Run `source` through `pipeline`: check, repair, finish pending loads, extract, load, report.

    Args:
        pipeline: From `utils.destinations.make_pipeline`.
        source: A dlt source factory (e.g. `currencies_source`), called here so that its own missing
            settings are reported like the destination's; or an already built source or resource.
            A factory with a `refresh` parameter is told whether this run really refreshes (a
            requested refresh whose package an earlier try left pending is not repeated).
        **run_options: Passed to `pipeline.run` (e.g. `refresh`, `loader_file_format`).

    Returns:
        The load report.

    Raises:
        ConfigurationError: A source or destination setting is missing.
        PermanentPipelineError: A failure no retry can fix (subclasses name what to change).
        PipelineError: A step failed in a way that may heal; the original error is chained.
        RunStopped: A signal (Ctrl-C's SIGINT, SIGTERM) stopped a step; pending packages are kept.
            A host's own signal exception (Prefect's `TerminationSignal`) is raised as it is.
    """
    started = time.monotonic()
    progress.quiet_known_dlt_warnings()
    collector = progress.collector()
    if collector is not None:
        pipeline.collector = collector  # what `dlt.pipeline(progress=...)` sets
    config = check_destination(pipeline)
    with destination_kept_open(pipeline, config):
        try:
            return _run(pipeline, source, started, run_options)
        except PipelineError:
            raise
        except Exception as exc:
            # The destination met anywhere else - a source asking whether its table is empty
            # before a first load, say - is reported the same way, not as a driver traceback.
            cannot = destination_failure(pipeline, exc, "while talking to the destination")
            if cannot is not None:
                raise cannot from exc
            raise


def _run(pipeline: dlt.Pipeline, source: Source, started: float, run_options: dict[str, Any]) -> LoadSummary:
    log = progress.logger()
    name = pipeline.pipeline_name
    notes: list[str] = []
    repaired = dlt_private.discard_committed_extracts(pipeline)
    if repaired:
        notes.append(f"Repaired {len(repaired)} package(s) a killed run left extracted and normalised.")
    leftovers = dlt_private.discard_interrupted_leftovers(pipeline)
    if leftovers:
        notes.append(
            f"Removed what stopped extractions or normalisations left and no run would use: {', '.join(leftovers)}."
        )
        log.info("%s: %s", name, notes[-1])
    pending = list(
        dict.fromkeys([*pipeline.list_extracted_load_packages(), *pipeline.list_normalized_load_packages()])
    )
    finished_counts = rows_per_load(pipeline, pending)  # from the failed try's saved trace
    if pending:
        log.info(
            "%s: finishing %d load package(s) left by an earlier try before extracting: %s",
            name,
            len(pending),
            ", ".join(pending),
        )
        if run_options.get("refresh") and has_refresh_package(pipeline, pending):
            log.info("%s: the pending package is the full refresh; this try runs incrementally", name)
            run_options = {**run_options, "refresh": None}
    data = _build(pipeline, source, refresh=bool(run_options.get("refresh")))
    # The pipeline, its destination client and its source are built: what they imported (dlt's
    # runtime, the database drivers) is loaded for good. In a process run as a command, collecting
    # starts here, past those objects (utils/gc_settings.py); elsewhere this does nothing.
    gc_settings.imports_loaded()
    try:
        if pipeline.has_pending_data:
            # `run()` would load only these and skip extraction: load them first, then extract.
            pipeline.normalize()
            finished_counts = {**rows_per_load(pipeline, pending), **finished_counts}
            pipeline.load()
        refills: list[LoadInfo] = []
        refill_counts: dict[str, dict[str, int]] = {}
        if not run_options.get("refresh"):
            run_options = _recreate_dropped_tables(pipeline, source, data, run_options, notes, refills)
            refill_counts = rows_per_load(pipeline, [i for info in refills for i in info.loads_ids])
        info = pipeline.run(data, **run_options)
    except PipelineStepFailed as exc:
        if stop_signal(exc) is not None:
            stop = stopped(pipeline, exc)
            if isinstance(stop, RunStopped):
                raise stop from exc
            raise stop from None  # the host's own exception, as its handler raised it
        raise translate(pipeline, exc) from exc
    return _report(
        pipeline,
        [*refills, info],
        pending,
        {**finished_counts, **refill_counts},
        time.monotonic() - started,
        notes,
    )


@contextmanager
def destination_kept_open(pipeline: dlt.Pipeline, config: Any = None) -> Iterator[None]:
    """Keep a local DuckDB database open for the whole run, so each step does not reopen it.

    dlt opens the database file for each client it makes (the pre-flight table check, the state
    and schema sync, each load job, the staging emptying, the row counts) and closes it when that
    client's last connection is returned - a full open (catalogue read, WAL replay) and, after
    writes, a checkpoint each time: about 40 ms of CPU per open of the products database at 1M
    rows, against 3-4 ms to join an open one (measured on this project's 2-core machine). DuckDB
    shares one open database between the connections of a process that open the same file with
    the same configuration, so holding one connection, borrowed through dlt's own pool with the
    configuration dlt uses, makes every later open a cheap new session and leaves one checkpoint
    for the end. Nothing changes for other destinations, for a
    database dlt was handed as a connection, or when the file cannot be opened (the run then fails
    where it always did, with dlt's error).

    Args:
        pipeline: The pipeline about to run.
        config: Its destination configuration, resolved already (`check_destination`); else resolved here.
    """
    pool: Any = None
    held: Any = None
    if _destination_type(pipeline) == "duckdb":
        try:
            if config is None:
                config = pipeline.destination_client().config
            credentials: Any = config.credentials  # DuckDbCredentials
            pool = credentials.conn_pool
            if pool is not None and credentials.external_conn() is None:
                held = pool.borrow_conn()
        except Exception as exc:  # not ours to report: the run meets it again and reports it
            progress.logger().debug("not keeping the DuckDB database open: %s", exc)
            held = None
    try:
        yield
    finally:
        if held is not None:
            pool.return_conn(held)  # the last connection: DuckDB checkpoints and closes the file


def _destination_type(pipeline: dlt.Pipeline) -> str:
    return pipeline.destination.destination_type.rsplit(".", 1)[-1] if pipeline.destination else ""


def has_refresh_package(pipeline: dlt.Pipeline, load_ids: list[str]) -> bool:
    """Whether a pending package drops or truncates tables, i.e. was extracted by a full refresh."""
    for load_id in load_ids:
        try:
            state = pipeline.get_load_package_state(load_id)  # normalised packages
        except LoadPackageNotFound:
            state = dlt_private.extracted_package_state(pipeline, load_id)
        if state.get("dropped_tables") or state.get("truncated_tables"):
            return True
    return False


@contextmanager
def destination_step(pipeline: dlt.Pipeline, doing: str, kept: str = _KEPT) -> Iterator[None]:
    """Translate an error raised while the engine itself talks to the destination (not in a step).

    dlt's errors, and a database driver's own (a connection dlt opens outside its translation), by
    the same rule as `translate` (`utils.run_engine.failures`): one line a person can act on,
    permanent when no retry can fix it, transient otherwise; the original stays chained. A
    destination that cannot be reached or opened (`utils.run_engine.destination_failures`) names what to check.

    Args:
        pipeline: The pipeline whose destination is being talked to.
        doing: What the engine was doing, for the message ("checking ... for dropped tables").
        kept: What happens to pending data, appended to a transient error's message.

    Raises:
        DeterministicError: A failure no retry can fix.
        DestinationUnavailableError: The destination cannot be reached or its file is locked (transient).
        PipelineError: A failure that may heal.
    """
    try:
        yield
    except PipelineError:
        raise
    except Exception as exc:
        # A driver's own error too (Snowflake's connector raises its DB-API `OperationalError` while
        # dlt opens the connection, outside dlt's translation): never a raw traceback.
        cannot = destination_failure(pipeline, exc, doing)
        if cannot is not None:
            raise cannot from exc
        if not isinstance(exc, DltException | OSError) and not _is_driver_error(exc):
            raise  # a bug, not the destination: its traceback is what a developer needs
        name = pipeline.pipeline_name
        if is_permanent(exc):
            raise DeterministicError(
                f"Pipeline '{name}' failed {doing}: {first_cause_line(exc)}. This fails the same way "
                "on every retry, so it is not retried: change the setting it names, then run again."
            ) from exc
        raise PipelineError(
            f"Pipeline '{name}' failed {doing}: {first_cause_line(exc)}. {kept}".rstrip()
        ) from exc


def _is_driver_error(exc: BaseException) -> bool:
    """Whether `exc` is a database driver's error: PEP 249 names its base class `DatabaseError`."""
    return any(kind.__name__ == "DatabaseError" for kind in type(exc).__mro__)


def translate(pipeline: dlt.Pipeline, exc: PipelineStepFailed) -> PipelineError:
    """The error a person reads for a failed step, permanent when no retry can fix it.

    Args:
        pipeline: The pipeline whose step failed.
        exc: dlt's step failure.

    Returns:
        Our own error from the source (kept as it is), a `SchemaDriftError`, a
        `DestinationRejectedError` (the package is aborted), a `DeterministicError`, or a transient
        `PipelineError`; the caller chains `exc`.
    """
    name = pipeline.pipeline_name
    ours = find_cause(exc, PipelineError)
    if ours is not None:
        return ours  # written for a person by a source; its own __cause__ is kept
    drift = find_cause(exc, DataValidationError)
    if drift is not None:
        return _schema_drift(pipeline, drift)
    if exc.step in ("sync", "load"):
        cannot = destination_failure(pipeline, exc, f"at the {exc.step} step")
        if cannot is not None:
            return cannot
    if exc.step == "load" and isinstance(exc.exception, DestinationTerminalException):
        return _abort_rejected_package(pipeline, exc)
    if is_permanent(exc):
        if pipeline.has_pending_data and exc.step in ("extract", "normalize"):
            pipeline.abort_packages()  # it would fail the same way in every later run
        table = table_of(exc)
        where = f" (table or resource '{table}')" if table else ""
        return DeterministicError(
            f"Pipeline '{name}' failed at the {exc.step} step{where}: {first_cause_line(exc)}. "
            "This fails the same way on every retry, so it is not retried: change the setting, the "
            "data or the code it names, then run again."
        )
    return PipelineError(f"Pipeline '{name}' failed at the {exc.step} step: {first_cause_line(exc)}. {_KEPT}")


# What a stop during each step leaves, checked by tests/pipelines/test_interrupted_runs.py.
_AFTER_STOP = {
    "extract": (
        "Nothing of the data it was extracting is kept: cursors move only with a completed "
        "extraction, so the next run extracts the same data again."
    ),
    "normalize": (
        "What it extracted is kept as a pending load package: the next run normalises and loads "
        "it before extracting anything new, so no row is lost or loaded twice."
    ),
    "load": (
        "The load package is kept: the next run finishes loading it (jobs already done are not "
        "repeated) before extracting anything new, so no row is lost or loaded twice."
    ),
}


def signal_name(number: int) -> str:
    """`SIGTERM (signal 15)` for 15; `a signal` when the number is not known (0)."""
    try:
        return f"{signal.Signals(number).name} (signal {number})"
    except ValueError:
        return f"signal {number}" if number else "a signal"


def stopped(pipeline: dlt.Pipeline, exc: PipelineStepFailed) -> BaseException:
    """What to raise when a signal stopped a step: no failure, and nothing pending is dropped.

    Args:
        pipeline: The pipeline whose step was stopped.
        exc: dlt's step failure, caused by the stop (`failures.stop_signal`).

    Returns:
        A `RunStopped` naming the signal, the step and what happens to the data. A host's own signal
        exception in the chain (Prefect's `TerminationSignal`, raised by its SIGTERM handler while
        dlt was extracting) is returned as it is, after the message is logged: Prefect decides from
        it whether the flow run was cancelled or crashed.
    """
    number = stop_signal(exc) or 0
    message = (
        f"Pipeline '{pipeline.pipeline_name}' was stopped by {signal_name(number)} during the "
        f"{exc.step} step. {_AFTER_STOP.get(exc.step, _KEPT)} Nothing needs changing: run it again."
    )
    host = next((c for c in chain(exc) if _is_host_signal(c)), None)
    if host is not None:
        progress.logger().warning(message)
        return host
    return RunStopped(message, number)


def _is_host_signal(exc: BaseException) -> bool:
    return not isinstance(exc, Exception | KeyboardInterrupt) and isinstance(
        getattr(exc, "signal", None), int
    )


def _build(pipeline: dlt.Pipeline, source: Source, *, refresh: bool) -> DltSource | DltResource:
    # A setting still `.dlt/secrets.toml.example`'s placeholder is refused by key once the source's
    # settings resolve, before anything connects (a placeholder token would go to the network).
    with placeholders_refused(pipeline.pipeline_name):
        return _build_source(pipeline, source, refresh=refresh)


def _build_source(pipeline: dlt.Pipeline, source: Source, *, refresh: bool) -> DltSource | DltResource:
    # A credentials URL whose password is not URL-encoded is refused by key before any parser or
    # connector can quote part of it (utils.sql_connection).
    credentials_key = f"sources.{pipeline.pipeline_name}.credentials"
    refuse_ambiguous_url(dlt.secrets.get(credentials_key), credentials_key)
    if isinstance(source, DltSource | DltResource):
        return source
    try:
        built = source(refresh=refresh) if _takes_refresh(source) else source()
    except ConfigFieldMissingException as exc:
        prefix = f"sources.{pipeline.pipeline_name}"
        missing = missing_keys(exc, prefix)
        raise ConfigurationError(
            f"Pipeline '{pipeline.pipeline_name}' is missing {listing(missing)}. "
            f"{where_to_set(missing, secret_keys(exc, prefix))}{describe_missing(missing)}"
        ) from None
    except InvalidNativeValue as exc:
        # dlt chains the parser's own error, which quotes the part of the value it choked on - for a
        # connection URL with an unencoded password, part of the password. Name the key, drop the chain.
        key = ".".join(("sources", pipeline.pipeline_name, *exc.embedded_sections))
        raise ConfigurationError(
            f"Pipeline '{pipeline.pipeline_name}': `{key}` does not parse as a "
            f"{exc.spec.__name__}. {ENCODE_HINT}"
        ) from None
    assert isinstance(built, DltSource | DltResource), f"{source!r} did not build a dlt source"
    return built


def _takes_refresh(factory: Callable[..., Any]) -> bool:
    try:
        return "refresh" in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a callable without a signature
        return False


def missing_tables(pipeline: dlt.Pipeline) -> list[str]:
    """Tables that received data in earlier loads but no longer exist in the SQL destination.

    Args:
        pipeline: The pipeline (its stored schema says which tables were loaded).

    Returns:
        Their names; empty for destinations that are not SQL databases.
    """
    destination = _destination_type(pipeline)
    if destination not in SQL_DESTINATIONS or not pipeline.default_schema_name:
        return []
    schema = pipeline.default_schema
    loaded = [t["name"] for t in schema.data_tables() if has_table_seen_data(t)]
    if not loaded:
        return []
    with pipeline.destination_client() as client:
        get_storage_tables = getattr(client, "get_storage_tables", None)
        if get_storage_tables is None:
            return []
        return sorted(table for table, columns in get_storage_tables(loaded) if not columns)


def _recreate_dropped_tables(
    pipeline: dlt.Pipeline,
    source: Source,
    data: DltSource | DltResource,
    options: dict[str, Any],
    notes: list[str],
    refills: list[LoadInfo],
) -> dict[str, Any]:
    """Reload from scratch the resources whose tables were dropped in the destination.

    dlt keeps the tables it created in its stored schema and does not look again, and the cursors
    say the rows are loaded: without this, every later load into the table fails ("does not
    exist") and an incremental table would never be complete again. dlt's own
    `refresh="drop_resources"` resets exactly those resources (tables, schema entries, cursors).

    Returns:
        The options for the main run: with the refresh when it covers every selected resource
        (one run does it all), else unchanged, after a first run of the affected resources only
        (its load info appended to `refills`).
    """
    with destination_step(pipeline, "checking the destination for dropped tables"):
        missing = missing_tables(pipeline)
    if not missing:
        return options
    schema = pipeline.default_schema
    resources = sorted({str(get_root_table(schema.tables, t).get("resource") or t) for t in missing})
    message = (
        f"{pipeline.pipeline_name}: table(s) {', '.join(missing)} were loaded before but no longer exist "
        f"in dataset '{pipeline.dataset_name}' (dropped by hand?); reloading resource(s) "
        f"{', '.join(resources)} from scratch"
    )
    progress.logger().warning(message)
    notes.append(message + ".")
    selected = list(data.selected_resources) if isinstance(data, DltSource) else [data.name]
    if set(selected) <= set(resources):
        return {**options, "refresh": "drop_resources"}
    # A source built by the caller is cloned; a factory builds a fresh one (first-load aware).
    fresh = data if isinstance(source, DltSource | DltResource) else _build(pipeline, source, refresh=True)
    assert isinstance(fresh, DltSource), "several resources come from a source"
    # `with_resources` selects on a clone: `data` keeps its selection for the main run.
    refills.append(pipeline.run(fresh.with_resources(*resources), **{**options, "refresh": "drop_resources"}))
    return options


def _schema_drift(pipeline: dlt.Pipeline, error: DataValidationError) -> SchemaDriftError:
    """Name the table and column whose change the schema contract refused, and what to do."""
    if pipeline.has_pending_data:
        # Whatever was extracted before the violation must not be loaded half-way.
        pipeline.abort_packages()
    column = f".{error.column_name}" if error.column_name else ""
    return SchemaDriftError(
        f"Pipeline '{pipeline.pipeline_name}': upstream change to {error.table_name}{column} breaks the "
        f"schema contract ({error.schema_entity} are '{error.contract_mode}'): {error}. Nothing of this "
        "run was loaded. If the change is intended, migrate the destination column (or drop and reload "
        "the table) and run again."
    )


def _abort_rejected_package(pipeline: dlt.Pipeline, exc: PipelineStepFailed) -> DestinationRejectedError:
    """The destination refused the data for good: retrying the package would fail forever.

    Abort it - dlt rolls the local state (incremental cursors included) back to before the
    package - so the next run extracts the same rows again once the cause is fixed.
    """
    failed = exc.exception
    detail = str(getattr(failed, "failed_message", None) or failed)
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    # The database's own first line says what is wrong ("Table ... does not exist"); its last
    # line is often only a hint ("Did you mean ...?"). Keep both.
    said = lines[0] if lines else ""
    if len(lines) > 1:
        said = f"{said} ... {lines[-1]}"
    pipeline.abort_packages()
    undefined = find_cause(exc, DestinationUndefinedEntity) is not None or "does not exist" in detail
    repair = (
        " A table this load writes to does not exist in the destination (dropped by hand?): the "
        "next run recreates it and reloads its data from scratch."
        if undefined
        else ""
    )
    return DestinationRejectedError(
        f"Pipeline '{pipeline.pipeline_name}': the destination rejected load {exc.load_id}: "
        f"{said[:500]}. The load was rolled back and its package aborted; fix the cause and run "
        f"again - the same data will be extracted again.{repair}"
    )


def _report(
    pipeline: dlt.Pipeline,
    infos: list[LoadInfo],
    pending: list[str],
    earlier_counts: dict[str, dict[str, int]],
    duration: float,
    notes: list[str],
) -> LoadSummary:
    load_ids = [load_id for info in infos for load_id in info.loads_ids]
    new = rows_per_load(pipeline, list(infos[-1].loads_ids))
    per_load = {**earlier_counts, **new}
    totals: dict[str, int] = {}
    for load_id in load_ids:
        for table, rows in per_load.get(load_id, {}).items():
            totals[table] = totals.get(table, 0) + rows
    destination = infos[-1].destination_type.rsplit(".", 1)[-1]
    loaded = sorted({table for tables in per_load.values() for table in tables})
    summary = LoadSummary(
        pipeline=pipeline.pipeline_name,
        destination=destination,
        dataset=infos[-1].dataset_name,
        load_ids=load_ids,
        row_counts=dict(sorted(totals.items())),
        finished_load_ids=[i for i in pending if i not in load_ids],
        rows_per_load=per_load,
        rows_in_table=_counted_after_load(pipeline, loaded, destination),
        duration_seconds=duration,
        notes=notes,
    )
    log = progress.logger()
    for line in summary.lines():
        log.info(line)
    return summary


def _counted_after_load(pipeline: dlt.Pipeline, tables: list[str], destination: str) -> dict[str, int]:
    with destination_step(pipeline, "emptying the staging tables and counting rows after the load", kept=""):
        return _finish_in_destination(pipeline, tables, destination)


def _finish_in_destination(pipeline: dlt.Pipeline, tables: list[str], destination: str) -> dict[str, int]:
    """Empty the staging dataset and count the loaded tables' rows, in one destination session."""
    if destination not in SQL_DESTINATIONS or not pipeline.default_schema_name:
        return {}
    with pipeline.destination_client() as client:
        _empty_staging(client, list(pipeline.default_schema.data_table_names()))
        return _count_rows(client.sql_client, tables)


def empty_staging_tables(pipeline: dlt.Pipeline) -> list[str]:
    """Empty the tables of the `<dataset>_staging` dataset once the load has completed.

    Merges and replaces load through them and dlt leaves the last load's rows there: a second copy
    of the data nobody reads. dlt's own `truncate_staging_dataset` is not used: in dlt 1.31 it
    creates an empty staging dataset for append-only loads, without dlt's version table, and the
    next refresh of that pipeline then fails ("_dlt_version does not exist"). Only dlt's version
    row stays in the staging dataset. Every run does this (with its row counts, in one session).

    Args:
        pipeline: The pipeline that just loaded.

    Returns:
        The staging tables emptied.
    """
    if _destination_type(pipeline) not in SQL_DESTINATIONS or not pipeline.default_schema_name:
        return []
    with pipeline.destination_client() as client:
        return _empty_staging(client, list(pipeline.default_schema.data_table_names()))


def _empty_staging(client: Any, tables: list[str]) -> list[str]:
    with_staging = getattr(client, "with_staging_dataset", None)
    if with_staging is None or not tables:
        return []
    with with_staging():
        if not client.is_storage_initialized():
            return []
        present = [t for t, columns in client.get_storage_tables(tables) if columns]
        if present:
            client.sql_client.truncate_tables(*present)
    return present


def table_row_counts(pipeline: dlt.Pipeline, tables: list[str], destination: str) -> dict[str, int]:
    """Rows each table holds now, counted in a SQL destination; empty for other kinds.

    Args:
        pipeline: The pipeline.
        tables: Table names as in dlt's schema.
        destination: The destination type.

    Returns:
        Rows per table that exists.
    """
    if destination not in SQL_DESTINATIONS or not tables:
        return {}
    with pipeline.sql_client() as client:
        return _count_rows(client, tables)


def _count_rows(client: Any, tables: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    if not tables or not client.has_dataset():
        return counts
    for table in tables:
        query = f"SELECT COUNT(*) FROM {client.make_qualified_table_name(table)}"  # noqa: S608 - name from dlt's schema
        try:
            result = client.execute_sql(query) or []
        except Exception as exc:  # a table the load dropped, or never created
            progress.logger().debug("not counting %s: %s", table, exc)
            continue
        counts[table] = int(result[0][0])
    return counts
