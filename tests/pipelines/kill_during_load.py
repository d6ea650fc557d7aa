"""Run the products pipeline and SIGKILL this process as soon as the first load job completes.

Used by test_products.py: a crash in the middle of the load step, deterministic enough to test.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path


def kill_when_loading(working_dir: Path) -> None:
    """Poll the pipeline's working dir; kill the process once a job of a package has completed."""
    while True:
        done = list(working_dir.glob("load/normalized/*/completed_jobs/products.*"))
        if done:
            print(f"killed after {len(done)} completed job(s)", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.005)


def main() -> None:
    """Start the watcher, then run the pipeline (which never finishes)."""
    from pipelines.products import pipeline, run

    threading.Thread(target=kill_when_loading, args=(Path(pipeline().working_dir),), daemon=True).start()
    run()
    print("the load finished before the kill - the test needs more, smaller files", flush=True)


if __name__ == "__main__":
    main()
