"""Run one pipeline from the command line, without Prefect: `python -m pipelines <name>`.

    DLT__DESTINATION=duckdb uv run python -m pipelines currencies
    uv run python -m pipelines products --full-refresh
    uv run python -m pipelines exchange_rates --start-date 2020-01-01 --end-date 2020-12-31

Progress and the load report go to standard output. A failure prints one line saying what is
wrong and what to change, and exits with status 1; the traceback is shown with `--debug` only.
Ctrl-C or SIGTERM stops the run at dlt's next safe point (a second one at once): one line says
which signal stopped which step and what happens to the data (pending load packages are kept for
the next run), and the exit status is 128 plus the signal number (130, 143), as a shell reports a
process a signal ended.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import logging
import os
import pkgutil
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

import pipelines
from utils import gc_settings
from utils.errors import PipelineError, RunStopped

_log = logging.getLogger("pipelines")


def names() -> list[str]:
    """Every pipeline module's name."""
    return sorted(m.name for m in pkgutil.iter_modules(pipelines.__path__) if not m.name.startswith("_"))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run the pipeline, report.

    Args:
        argv: The arguments (default: the command line's).

    Returns:
        The exit status: 0 when the run loaded, 1 when it failed, 2 for a wrong name or argument,
        128 plus the signal number when Ctrl-C (130) or SIGTERM (143) stopped it.
    """
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=names(), metavar="name", help=f"one of {', '.join(names())}")
    parser.add_argument("--full-refresh", action="store_true", help="drop the tables and cursors and reload")
    parser.add_argument(
        "--start-date", type=dt.date.fromisoformat, help="backfill from this day (exchange_rates)"
    )
    parser.add_argument(
        "--end-date", type=dt.date.fromisoformat, help="backfill to this day (exchange_rates)"
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of a failure")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO, format="%(message)s", stream=sys.stdout
    )
    if not args.debug:
        # The Snowflake connector logs its version, its domain and each urllib3 retry at INFO and
        # WARNING: lines before the one that says what failed and which setting to check.
        logging.getLogger("snowflake.connector").setLevel(logging.ERROR)
    options: dict[str, Any] = {}
    if args.full_refresh:
        options["full_refresh"] = True
    if args.start_date or args.end_date:
        options.update(start_date=args.start_date, end_date=args.end_date)

    from dlt.common.runtime import signals as dlt_signals  # imported late: `--help` needs no dlt

    from utils.config_keys import toml_errors_named
    from utils.run_engine import report_to

    def stop(number: int, frame: FrameType | None) -> None:
        # The first Ctrl-C or SIGTERM asks dlt to stop at its next safe point, as dlt itself does
        # while it normalises and loads (extraction checks between items): an exception raised at
        # an arbitrary point can land in a finaliser, where Python ignores it and the run goes on.
        # A second one stops at once. Python's default SIGTERM would end the process on the spot.
        if dlt_signals.was_signal_received():
            raise RunStopped(stopped_message(args.name, number), number)
        dlt_signals.set_received_signal(number)
        dlt_signals.wake_all()
        if sys.stdin.isatty():
            os.write(2, b"Stopping at the next safe point; press Ctrl-C again to stop at once.\n")

    previous = {number: signal.signal(number, stop) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        with report_to(_log), toml_errors_named():
            module = importlib.import_module(f"pipelines.{args.name}")
            module.run(**options)
    except KeyboardInterrupt as exc:  # a stop: Ctrl-C or SIGTERM through `stop`
        number = exc.signal_number if isinstance(exc, RunStopped) else int(signal.SIGINT)
        print(exc if isinstance(exc, RunStopped) else stopped_message(args.name, number), file=sys.stderr)
        _log.debug("the full traceback:", exc_info=True)
        return 128 + number
    except PipelineError as exc:
        print(f"{args.name} failed: {exc}", file=sys.stderr)
        _log.debug("the full traceback:", exc_info=True)
        return 1
    except TypeError as exc:  # an option this pipeline does not take
        if "unexpected keyword argument" not in str(exc):
            raise
        print(f"{args.name} does not take that option: {exc}", file=sys.stderr)
        return 2
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 0


def stopped_message(name: str, number: int) -> str:
    """What a run stopped by signal `number` outside dlt's steps says (the engine words the rest)."""
    from utils.run_engine import signal_name

    return (
        f"Pipeline '{name}' was stopped by {signal_name(number)}. Pending load packages are kept "
        "and finished by the next run. Nothing needs changing: run it again."
    )


def run_as_command() -> None:
    """`main()` as the whole process: collections deferred past the imports, no teardown at exit.

    See utils/gc_settings.py: about half a second of CPU per run on this project's 2-core machine,
    the same exit status, output and files.
    """
    gc_settings.defer_collection()
    try:
        status = main()
    except BaseException:  # SystemExit from --help or a wrong argument too: a normal exit
        gc_settings.restore_collection()
        raise
    gc_settings.exit_process(status)


if __name__ == "__main__":
    run_as_command()
