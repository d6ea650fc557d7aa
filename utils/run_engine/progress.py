"""Where the engine's messages and dlt's progress lines go while a run is in progress.

A flow calls `report_to(get_run_logger())` around `run()`: the engine then attaches dlt's log
collector (the public `progress=` collector, as `dlt.pipeline(progress=...)` would) to the pipeline
it runs, and logs its own decisions (packages finished, refresh skipped, tables recreated) to the
same logger. Outside a flow both go to this module's logger.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, cast

from dlt.common.runtime.collector import LogCollector

# dlt progress lines go to the run log this often while a step runs (and once when it ends).
PROGRESS_LOG_PERIOD_SECONDS = 30.0

Logger = logging.Logger | logging.LoggerAdapter[Any]

_log = logging.getLogger("utils.run_engine")
_target: ContextVar[tuple[Logger, float] | None] = ContextVar("run_engine_report_to", default=None)


@contextmanager
def report_to(logger: Logger, period_seconds: float = PROGRESS_LOG_PERIOD_SECONDS) -> Iterator[None]:
    """Send the engine's messages and dlt's progress of every run inside the block to `logger`.

    Args:
        logger: Where the lines go (Prefect's run logger in a flow).
        period_seconds: Seconds between progress lines while a step runs.
    """
    token = _target.set((logger, period_seconds))
    try:
        yield
    finally:
        _target.reset(token)


def logger() -> Logger:
    """The logger the current run reports to."""
    target = _target.get()
    return target[0] if target is not None else _log


def collector() -> LogCollector | None:
    """The progress collector (dlt's) for the current run, or None when nobody listens."""
    target = _target.get()
    if target is None:
        return None
    # A LoggerAdapter (Prefect's run logger) works: dlt checks for both kinds.
    return _PeriodicLogCollector(
        log_period=target[1], logger=cast(logging.Logger, target[0]), dump_system_stats=False
    )


class _PeriodicLogCollector(LogCollector):
    """dlt's log collector, without the empty line it logs as each step starts."""

    def _start(self, step: str) -> None:
        super()._start(step)
        # The first line of a step comes after one period (or when the step ends), not at once.
        self.last_log_time = self._clock()


class _KnownArrowHintDifferences(logging.Filter):
    """Drop dlt's "several column hints were different" warning, which every products run logged.

    The cause: connectorx's Arrow schema marks every column nullable, widens `numeric(p,s)` to
    `decimal(38,10)` and carries `jsonb` as text, while the resource's hints - reflected from
    PostgreSQL - say NOT NULL, `decimal(p,s)` and `json`. dlt keeps the resource's hints (the right
    ones), writes the data unmodified and warns, on every run, about a difference that is expected.
    The per-column details stay available at INFO level (`RUNTIME__LOG_LEVEL=INFO`).
    """

    MESSAGE = "when merging arrow schema with dlt schema, several column hints were different"

    def filter(self, record: logging.LogRecord) -> bool:
        return self.MESSAGE not in record.getMessage()


def quiet_known_dlt_warnings() -> None:
    """Install the filter above on dlt's logger (once; dlt keeps the logger object when it reconfigures)."""
    dlt_logger = logging.getLogger("dlt")
    if not any(isinstance(f, _KnownArrowHintDifferences) for f in dlt_logger.filters):
        dlt_logger.addFilter(_KnownArrowHintDifferences())
