"""The one run engine every pipeline's `run()` goes through (see `engine` for the sequence).

* `run_pipeline` - check, repair, finish pending packages, recreate dropped tables, run, translate
  errors, report (`utils.load_summary.LoadSummary`);
* `report_to` - where progress and the engine's messages go (a flow's run logger);
* `is_permanent` - whether a failure can heal by waiting (`failures` states the rule);
* `signal_name` - `SIGTERM (signal 15)`, for messages about a run a signal stopped.

dlt's private API is used in `dlt_private` only.
"""

from __future__ import annotations

from utils.run_engine.engine import (
    has_refresh_package,
    missing_tables,
    run_pipeline,
    signal_name,
    table_row_counts,
)
from utils.run_engine.failures import classify_type, is_permanent
from utils.run_engine.progress import report_to

__all__ = [
    "classify_type",
    "has_refresh_package",
    "is_permanent",
    "missing_tables",
    "report_to",
    "run_pipeline",
    "signal_name",
    "table_row_counts",
]
