"""`python -m pipelines <name>` that sends itself a real signal once a dlt step is under way.

Used by test_interrupted_runs.py: `python tests/pipelines/signal_during_step.py <name> <step> <SIGNAL>`,
and with `--flow` by tests/flows/test_interrupted_flow.py: `python flows/<name>.py` instead.
A watcher thread polls the pipeline's working directory for the files that only exist while
`<step>` runs and then signals this process, as Ctrl-C (SIGINT) or a worker shutdown (SIGTERM)
would. The process then runs on as the command does, with its own output and exit status.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
import time
from pathlib import Path

# What exists only while a step runs, relative to the pipeline's working directory.
DURING = {
    # The extraction's temporary folder (16 hex digits), renamed away when the extraction completes.
    "extract": "normalize/" + "[0-9a-f]" * 16,
    # The package being normalised, renamed into load/normalized when it is complete.
    "normalize": "load/new/*",
    # The first completed job of a package with several (many small files, one job at a time).
    "load": "load/normalized/*/completed_jobs/*.parquet",
}


def signal_when(working_dir: Path, step: str, signum: int) -> None:
    """Poll `working_dir`; signal this process once `step` is under way."""
    while not list(working_dir.glob(DURING[step])):
        time.sleep(0.002)
    print(f"sending {signal.Signals(signum).name} during {step}", flush=True)
    os.kill(os.getpid(), signum)


def main() -> None:
    """Start the watcher, then run the command (never returns)."""
    name, step, signame = sys.argv[1:4]
    flow = sys.argv[4:] == ["--flow"]
    working_dir = Path(os.environ["DLT_DATA_DIR"]) / "pipelines" / name
    watcher = threading.Thread(
        target=signal_when, args=(working_dir, step, signal.Signals[signame]), daemon=True
    )
    watcher.start()
    if flow:
        runpy.run_path(str(Path(__file__).parents[2] / "flows" / f"{name}.py"), run_name="__main__")
    from pipelines.__main__ import main as command

    sys.exit(command([name]))


if __name__ == "__main__":
    main()
