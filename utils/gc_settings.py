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

A command that owns its whole process (`python -m pipelines`) goes further, in three steps:

1. `defer_collection()` at start: no collection while the modules load (even with the raised
   threshold, the young and middle generations were collected 17 times there, about 0.25 s of CPU
   on the loaded 2-core machine, measured with `gc.callbacks`).
2. `imports_loaded()` once the pipeline's modules are in - the run engine calls it when the
   pipeline, its destination client and its source are built, so dlt's runtime and the database
   drivers they import are in too: all of it is moved out of the collector's reach for good
   (`gc.freeze()`), so no later collection walks it again, and collecting resumes for what the
   run itself allocates - a full load's cycles are still collected.
3. `exit_process(status)` at the end: exit handlers run and output is flushed as at any exit, and
   then the process ends without the interpreter's teardown - the final collection over every
   object and the clearing of every module, 0.2-0.4 s of CPU that frees memory the operating system
   reclaims anyway.

Why freezing needs the third step: at a normal interpreter exit, objects still frozen are never
collected, and DuckDB's bindings (nanobind) then report them as "leaked" on stderr. Ending the
process without teardown skips that report along with the rest; any path that does end through
the interpreter's teardown (an exception, a thread still running) unfreezes first.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys
import threading
from typing import NoReturn

# Allocations between two collections of the young generation (CPython's default is 700).
YOUNG_GENERATION_THRESHOLD = 10_000


class _Process:
    """What this module did to the process's collector (only `defer_collection` sets it)."""

    deferred = False
    frozen = False


def apply() -> None:
    """Raise the young generation's threshold (unless the collector is switched off or set higher)."""
    young, *older = gc.get_threshold()
    if young:  # 0 means the collector is switched off: leave that alone
        gc.set_threshold(max(young, YOUNG_GENERATION_THRESHOLD), *older)


def defer_collection() -> None:
    """Collect nothing until `imports_loaded()`: for a command that owns its whole process.

    Does nothing when the collector is switched off already (someone else decided).
    """
    if gc.isenabled():
        gc.disable()
        _Process.deferred = True


def imports_loaded() -> None:
    """Freeze what the imports loaded and collect as usual from here on.

    Does nothing unless `defer_collection()` was called: a function that calls this may also run
    inside a longer-lived process (a test, a flow), whose collector stays as it is.
    """
    if not _Process.deferred:
        return
    _Process.deferred = False
    gc.freeze()
    _Process.frozen = True
    gc.enable()


def restore_collection() -> None:
    """Undo `defer_collection()` and `imports_loaded()`: every object collectable again, collector on.

    For an exit through the interpreter's teardown, which must find nothing frozen (see the module
    docstring); called by `exit_process` when it cannot skip the teardown.
    """
    if _Process.frozen:
        gc.unfreeze()
        _Process.frozen = False
    if _Process.deferred:
        gc.enable()
        _Process.deferred = False


def exit_process(status: int) -> NoReturn:
    """End the process with `status`, skipping the interpreter's teardown when that is safe.

    Exit handlers (`atexit`: logging's flush, DuckDB's and dlt's own) run and standard output and
    error are flushed, as at any exit; what is skipped is the final collection and the clearing of
    every module. Each file, database and connection a run opens is closed by the run itself (dlt
    and the run engine close the DuckDB database, which checkpoints it; the operating system closes
    whatever socket is left, as it would for a killed process). When another non-daemon thread is
    still running, the process exits normally instead, which waits for it.

    Args:
        status: The exit status.
    """
    others = [t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon]
    if others:
        restore_collection()
        sys.exit(status)
    _flush()
    # The interpreter runs these at a normal exit; there is no public way to run them early.
    atexit._run_exitfuncs()
    _flush()
    os._exit(status)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        # A closed pipe or stream: nothing more can be written to it anyway.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
