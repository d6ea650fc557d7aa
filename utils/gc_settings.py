"""Garbage-collector settings for this project's processes: short batch runs that import a lot.

A pipeline run is a short process that imports dlt, SQLAlchemy, DuckDB and pyarrow (and Prefect
in a flow) - well over 100,000 objects that live until the process ends - and then does little
Python work of its own. With CPython's default thresholds the young generation is collected every
700 allocations: while those modules load, that is hundreds of collections that find almost
nothing to free, and each one that reaches the older generations walks every object loaded so far
(measured with `gc.callbacks` in an incremental products run: ~0.15-0.2 s of CPU before the run
starts, on a process of about 2.5 s).

`apply()` raises the young generation's threshold. Cycles are still collected - less often, in
larger batches; memory freed by reference counting (almost everything, Arrow buffers included)
is not affected.

Not used: `gc.freeze()` (after imports, or as the last exit handler, to skip the final collection
over everything at exit) saved another ~0.3 s per process, but DuckDB's bindings (nanobind) then
report their objects as "leaked" on stderr at every exit.
"""

from __future__ import annotations

import gc

# Allocations between two collections of the young generation (CPython's default is 700).
YOUNG_GENERATION_THRESHOLD = 10_000


def apply() -> None:
    """Raise the young generation's threshold (unless the collector is switched off or set higher)."""
    young, *older = gc.get_threshold()
    if young:  # 0 means the collector is switched off: leave that alone
        gc.set_threshold(max(young, YOUNG_GENERATION_THRESHOLD), *older)
