"""Run one pipeline from the command line, without Prefect: `python -m pipelines <name>`.

    DLT__DESTINATION=duckdb uv run python -m pipelines currencies
    uv run python -m pipelines products --full-refresh
    uv run python -m pipelines exchange_rates --start-date 2020-01-01 --end-date 2020-12-31

Progress and the load report go to standard output. A failure prints one line saying what is
wrong and what to change, and exits with status 1; the traceback is shown with `--debug` only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence
from typing import Any

import pipelines
from utils import gc_settings
from utils.errors import PipelineError

_log = logging.getLogger("pipelines")


def names() -> list[str]:
    """Every pipeline module's name."""
    return sorted(m.name for m in pkgutil.iter_modules(pipelines.__path__) if not m.name.startswith("_"))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run the pipeline, report.

    Args:
        argv: The arguments (default: the command line's).

    Returns:
        The exit status: 0 when the run loaded, 1 when it failed, 2 for a wrong name or argument.
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
    options: dict[str, Any] = {}
    if args.full_refresh:
        options["full_refresh"] = True
    if args.start_date or args.end_date:
        options.update(start_date=args.start_date, end_date=args.end_date)

    from utils.config_keys import toml_errors_named  # imported late: `--help` needs no dlt
    from utils.run_engine import report_to

    try:
        with report_to(_log), toml_errors_named():
            module = importlib.import_module(f"pipelines.{args.name}")
            module.run(**options)
    except PipelineError as exc:
        print(f"{args.name} failed: {exc}", file=sys.stderr)
        _log.debug("the full traceback:", exc_info=True)
        return 1
    except TypeError as exc:  # an option this pipeline does not take
        if "unexpected keyword argument" not in str(exc):
            raise
        print(f"{args.name} does not take that option: {exc}", file=sys.stderr)
        return 2
    return 0


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
