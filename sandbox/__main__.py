"""Serve the whole sandbox until Ctrl-C: `./dev sandbox`.

The dlt settings that point pipelines at it are written to `.local/sandbox.env` (gitignored, mode
0600) rather than printed, because they include the sandbox's made-up passwords and tokens. Load
them with `set -a; . .local/sandbox.env; set +a`.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from sandbox import Sandbox

ENV_FILE = Path(__file__).resolve().parents[1] / ".local" / "sandbox.env"


def main() -> None:
    """Start the sandbox, write its settings file and wait for Ctrl-C or SIGTERM."""
    stop = threading.Event()
    # Ctrl-C and SIGTERM only set the event (raising inside a blocking wait can break its lock).
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with Sandbox() as sandbox:
        ENV_FILE.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(ENV_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.writelines(f"{key}='{value}'\n" for key, value in sorted(sandbox.env().items()))
        print(f"Frankfurter API: {sandbox.frankfurter.base_url}")
        print(f"HubSpot API:     {sandbox.hubspot.base_url}")
        print(f"PostgreSQL:      127.0.0.1:{sandbox.postgres.port}/{sandbox.postgres.database}")
        print(f"Settings for the pipelines: {ENV_FILE} (set -a; . {ENV_FILE}; set +a)")
        print("Serving until Ctrl-C.")
        while not stop.wait(0.2):
            pass


if __name__ == "__main__":
    main()
