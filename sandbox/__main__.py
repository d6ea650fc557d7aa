"""Serve the whole sandbox until Ctrl-C: `./dev sandbox`.

The dlt settings that point pipelines at it are written to `.local/sandbox.env` (gitignored, mode
0600) rather than printed, because they include the sandbox's made-up passwords and tokens. Load
them with `set -a; . .local/sandbox.env; set +a`.
"""

from __future__ import annotations

from pathlib import Path

from sandbox import Sandbox
from sandbox.base import serve_until_signalled, write_private

ENV_FILE = Path(__file__).resolve().parents[1] / ".local" / "sandbox.env"


def announce(sandbox: Sandbox) -> None:
    """Write the settings file and say where each stand-in serves."""
    write_private(ENV_FILE, "".join(f"{key}='{value}'\n" for key, value in sorted(sandbox.env().items())))
    for name, standin in sandbox.standins.items():
        print(f"{name + ':':<16} {standin.location}")
    print(f"Settings for the pipelines: {ENV_FILE} (set -a; . {ENV_FILE}; set +a)")
    print("Serving until Ctrl-C.", flush=True)


if __name__ == "__main__":
    serve_until_signalled(Sandbox(), announce)
