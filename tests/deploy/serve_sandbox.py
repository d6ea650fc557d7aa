"""Serve the sandbox of the repository in the working directory until SIGTERM (test helper).

`python -m tests.deploy.serve_sandbox <file>` from a copy of the repository: that copy's sandbox
(generated stand-ins included) starts small, and its settings - plus the catalogue owner's DSN, for
comparisons - are written to `<file>` as JSON. The file appears only once everything is up.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sandbox import Sandbox
from sandbox.base import serve_until_signalled, write_private


def main() -> None:
    target = Path(sys.argv[1])

    def announce(sandbox: Sandbox) -> None:
        partial = target.with_suffix(".partial")
        write_private(partial, json.dumps({"env": sandbox.env(), "postgres_dsn": sandbox.postgres.dsn}))
        partial.rename(target)

    serve_until_signalled(Sandbox(products=2_000, hubspot=300), announce)


if __name__ == "__main__":
    main()
