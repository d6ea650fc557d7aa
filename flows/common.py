"""What every flow shares, all of it Prefect: the retry policy, the run lock and the load report.

A flow's task body is `run_and_report(PIPELINE_NAME, run, **options)`: take the pipeline's lock,
call the pipeline's `run()` - the run engine (`utils.run_engine`) does everything dlt needs,
finishing packages an earlier try left behind included - with dlt's progress and the engine's
messages going to the run log, then log and publish the engine's report as a table artifact.

The lock (`flows/lock.py`) makes sure two runs of one pipeline never overlap, whichever
deployment started them.

A Prefect task retry runs in the same process, on the same machine, so it finds the load packages
its failed try left in dlt's working directory (`DLT_DATA_DIR`); the engine loads them before
extracting anything new, and the report lists them beside the new load.

A run stopped by a signal is not retried: a retry in a process that is being shut down is
pointless, and nothing is lost - the next run finishes the pending package. See `run_and_report`.
"""

from __future__ import annotations

import gc
import importlib
import pkgutil
import signal
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from prefect import Flow, Task, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.logging.handlers import APILogHandler

from flows.lock import pipeline_lock
from utils import gc_settings
from utils.errors import RunStopped

if TYPE_CHECKING:
    from utils.load_summary import LoadSummary

# Once one of these is loaded, nothing is frozen: DuckDB's bindings (nanobind) print "nanobind: leaked
# N instances!" at exit for DuckDB objects still alive then - frozen ones, or ones that frozen dlt
# objects (module-level caches) refer to.
FREEZE_ONLY_BEFORE = ("dlt", "duckdb")

# Growing delays between task retries (seconds): a blip clears in 10 s, an API restart in a minute
# or two, a longer outage is worth an alert rather than more waiting.
RETRY_DELAYS_SECONDS: list[float] = [10, 30, 90]
RETRIES = len(RETRY_DELAYS_SECONDS)


def retry_unless_permanent(task: Task[..., object], task_run: TaskRun, state: State[object]) -> bool:
    """Prefect retry condition: retry unless the failure cannot heal by waiting.

    Bad credentials, a rejected request, a malformed payload, a schema contract violation, a
    destination that refuses the data or any other deterministic dlt error fail the same way on
    every retry, so those go straight to failure (and the alert) instead of waiting two minutes.
    The rule is the run engine's (`utils.run_engine.failures`).

    Args:
        task: The task being retried.
        task_run: Its run.
        state: The failed state.

    Returns:
        True to retry.
    """
    try:
        state.result()
    except BaseException as exc:
        from utils.run_engine import is_permanent  # imported late: flows load without dlt

        return not is_permanent(exc)
    return True


# What every load task is given: `@task(**LOAD_TASK_OPTIONS)`. Retries with growing delays unless
# the error is permanent; no cache and no persisted result, because a load must run every time it
# is called (Prefect's default policy hashes inputs and source, and with results persisted would
# hand a second call in one flow run the first call's result without loading).
LOAD_TASK_OPTIONS: dict[str, Any] = {
    "retries": RETRIES,
    "retry_delay_seconds": RETRY_DELAYS_SECONDS,
    "retry_condition_fn": retry_unless_permanent,
    "cache_policy": NO_CACHE,
    "persist_result": False,
}


def run_and_report(pipeline_name: str, run: Callable[..., LoadSummary], **run_options: Any) -> LoadSummary:
    """Run a pipeline's `run()` under its lock, with progress in the run log; publish its report.

    Args:
        pipeline_name: The pipeline's name (`PIPELINE_NAME` in its module), which names the lock.
        run: The pipeline module's `run` function.
        **run_options: Passed to `run` (e.g. `full_refresh=True`, a backfill's dates).

    Returns:
        The engine's report of what the run loaded.

    Raises:
        RunStopped: Ctrl-C stopped a dlt step. Prefect does not retry it (a `KeyboardInterrupt`):
            the task and flow runs end Crashed ("aborted by an interrupt signal").
        prefect.exceptions.TerminationSignal: SIGTERM stopped a dlt step. dlt holds the signal
            back until the step can stop safely, so Prefect's own SIGTERM handler never saw it;
            it is handed the signal now and reacts as to any SIGTERM it receives itself (its
            cancellation handling included; else Crashed, "aborted by a termination signal", and
            the process ends).
    """
    from utils.config_keys import toml_errors_named  # imported late: flows load without dlt
    from utils.run_engine import report_to

    log = get_run_logger()
    with pipeline_lock(pipeline_name), report_to(log), toml_errors_named():
        try:
            # The engine counts rows in the tables inside `run()`, while the lock is held.
            report = run(**run_options)
        except RunStopped as stopped:
            log.warning(str(stopped))  # which signal, which step, what happens to the data
            ship_logs()
            hand_back_signal(stopped.signal_number)
            raise
        except BaseException as exc:
            if not isinstance(exc, Exception):  # Prefect's TerminationSignal: the process ends next
                ship_logs()
            raise
    publish_load_report(report)
    return report


def ship_logs() -> None:
    """Send the run's queued log lines to the API now: a SIGTERM ends the process before its batch."""
    APILogHandler().flush()


def hand_back_signal(signal_number: int) -> None:
    """Call this process's own handler of a SIGTERM that dlt held back, as if it arrived now.

    Under a flow that is Prefect's handler, which raises its `TerminationSignal`. Nothing happens
    for other signals, or when the handler is Python's default or ignores the signal.

    Args:
        signal_number: The signal that stopped the run.
    """
    if signal_number != signal.SIGTERM:
        return
    handler = signal.getsignal(signal.SIGTERM)
    if callable(handler):
        handler(signal_number, None)


def publish_load_report(report: LoadSummary) -> None:
    """Publish the engine's report as the table artifact `<pipeline>-load`.

    One row per table and load package (pipeline, table, load id, rows loaded, rows in table,
    duration); the description gives the headline, destination and dataset, packages finished for
    an earlier try and whatever the engine did on the way.
    """
    earlier = report.finished_load_ids
    notes = [f"Destination `{report.destination}`, dataset `{report.dataset}`."]
    if earlier:
        notes.append(f"Finished {len(earlier)} load package(s) left by an earlier try: {', '.join(earlier)}.")
    if report.reconciled_deletes is not None:
        deleted = ", ".join(f"`{t}` {n}" for t, n in sorted(report.reconciled_deletes.items())) or "none"
        notes.append(
            f"Key reconciliation ran: rows deleted upstream removed from the destination: {deleted}."
        )
    description = "\n".join(["### " + report.lines()[0], "", *notes, *report.notes])
    create_table_artifact(
        table=[row.as_row() for row in report.tables()],
        key=artifact_key(report.pipeline),
        description=description,
    )


def artifact_key(pipeline_name: str) -> str:
    """The artifact key of a pipeline's load report (Prefect keys allow lower case, digits, dashes)."""
    return "".join(c if c.isalnum() else "-" for c in pipeline_name.lower()) + "-load"


def run_as_command(flow: Flow[Any, Any]) -> NoReturn:
    """`python flows/<name>.py`: run the flow once, then end the process as `python -m pipelines` does.

    The flow runs as from any other caller: its run and its task's retries are in the Prefect UI,
    its report is published. Once it returns, the exit handlers run - Prefect's send the last logs
    and events to the API - and the process ends without the interpreter's teardown
    (`utils.gc_settings.exit_process`): 0.3 s of the 2.5 s a flow process cost on top of the
    pipeline's `run()` alone (`bench/flows.py --anatomy`, currencies, load 1-1.3). A failed flow
    ends the same way after printing its traceback, with exit status 1: through the teardown,
    DuckDB's bindings printed about 40 lines of "nanobind: leaked ..." after the error.
    A run that Ctrl-C stopped in a dlt step prints the engine's one line instead and exits with
    130 (128 plus the signal), as `python -m pipelines` does; any other Ctrl-C and `sys.exit` keep
    Python's own handling. (SIGTERM ends the process through Prefect's handler: `run_and_report`.)

    Args:
        flow: A flow of this package that takes no parameters (its defaults apply).
    """
    try:
        flow()
    except RunStopped as stopped:
        print(stopped, file=sys.stderr)
        gc_settings.exit_process(128 + stopped.signal_number)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:
        traceback.print_exc()  # what the interpreter prints for an exception nobody caught
        gc_settings.exit_process(1)
    gc_settings.exit_process(0)


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


def freeze_imported_objects() -> bool:
    """Move every object that exists now out of the garbage collector's sight (`gc.freeze()`).

    Called once, when this module is imported: after Prefect, before a task imports its pipeline.
    Prefect's modules are about 115,000 objects that live as long as the process. Left in view,
    every full collection walks them - during the run and several times more while the
    interpreter shuts down: a flow process took 1.0-1.5 s from its last exit handler to its end,
    0.3 s with them frozen (0.35-0.4 s less CPU; currencies flow, load average 3-5, measured
    with `bench/flows.py --anatomy`). Frozen objects are still freed by reference counting; only
    reference cycles among them would never be collected, and objects made at import time live
    until the process ends anyway.

    Nothing is frozen once a module in `FREEZE_ONLY_BEFORE` is loaded (a test session, a script
    that ran a pipeline first); dlt and DuckDB loaded after the freeze are collected as usual.

    Returns:
        True if the objects were frozen.
    """
    if any(name in sys.modules for name in FREEZE_ONLY_BEFORE):
        return False
    gc.freeze()
    return True


# Last, so that everything imported above (Prefect, the lock) is frozen with it.
freeze_imported_objects()
