"""Serve the sandbox of the repository in the working directory until SIGTERM (test helper).

`python -m tests.deploy.serve_sandbox <file>` from a copy of the repository: that copy's sandbox
(generated stand-ins included) starts small, and its settings - plus the catalogue owner's DSN, for
comparisons - are written to `<file>` as JSON. The file appears only once everything is up.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

from sandbox import Sandbox


def main() -> None:
    target = Path(sys.argv[1])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with Sandbox(products=2_000, contacts=300) as sandbox:
        settings = {"env": sandbox.env(), "postgres_dsn": sandbox.postgres.dsn}
        partial = target.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(settings, out)
        partial.rename(target)
        while not stop.wait(0.2):
            pass


if __name__ == "__main__":
    main()
