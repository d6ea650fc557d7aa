"""What every flow shares: the retry policy and the load report.

Kept here, not in each flow, so that a new flow gets the same behaviour by importing it.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from dlt.common.pipeline import LoadInfo
from prefect import Flow, Task, get_run_logger
from prefect.client.schemas.objects import State, TaskRun

from utils.destinations import find_cause
from utils.errors import PermanentPipelineError
from utils.load_summary import LoadSummary

# Growing delays between task retries (seconds): a blip clears in 10 s, an API restart in a minute
# or two, a longer outage is worth an alert rather than more waiting.
RETRY_DELAYS_SECONDS: list[float] = [10, 30, 90]
RETRIES = len(RETRY_DELAYS_SECONDS)


def retry_unless_permanent(task: Task[..., object], task_run: TaskRun, state: State[object]) -> bool:
    """Prefect retry condition: retry unless the failure cannot heal by waiting.

    Bad credentials, a rejected request or a malformed payload fail the same way on every retry,
    so those go straight to failure (and the alert) instead of waiting two minutes.

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
        return find_cause(exc, PermanentPipelineError) is None
    return True


def run_and_report(run: Callable[[], LoadInfo]) -> LoadSummary:
    """Run a pipeline's `run()`, log what it loaded and return the summary (the body of every load task).

    Args:
        run: The pipeline module's `run` function.

    Returns:
        What the run loaded.
    """
    summary = LoadSummary.from_load_info(run())
    log_load_summary(summary)
    return summary


def log_load_summary(summary: LoadSummary) -> None:
    """Log what a pipeline run loaded through Prefect's run logger.

    dlt's own logger does not propagate, so without this nothing of the load reaches Prefect.
    """
    logger = get_run_logger()
    for line in summary.lines():
        logger.info(line)


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
