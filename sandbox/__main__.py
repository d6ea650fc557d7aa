"""Serve the whole sandbox until Ctrl-C: `./dev sandbox`.

The dlt settings that point pipelines at it are written to `.local/sandbox.env` (gitignored, mode
0600) rather than printed, because they include the sandbox's made-up passwords and tokens. Load
them with `set -a; . .local/sandbox.env; set +a`. The file lives as long as the sandbox: it is
removed when the sandbox stops (Ctrl-C, SIGTERM, or an error), unless another sandbox has written
its own settings there since - a file this session did not write is never removed.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from sandbox import Sandbox
from sandbox.base import serve_until_signalled, write_private

ENV_FILE = Path(__file__).resolve().parents[1] / ".local" / "sandbox.env"


class SettingsFile:
    """The settings file of one sandbox session: written once, removed only if still ours.

    Args:
        path: Where to write it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._written: str | None = None

    def write(self, text: str) -> None:
        """Write `text`, readable by its owner only, replacing what was there."""
        write_private(self.path, text)
        self._written = text

    def remove(self) -> bool:
        """Remove the file if it still holds exactly what `write` put there.

        Its text holds the session's ports and made-up secrets, so another session's file never
        matches: a sandbox started since, which wrote its settings over ours, keeps its file.

        Returns:
            True if the file was removed.
        """
        if self._written is None:
            return False
        try:
            still_ours = self.path.read_text(encoding="utf-8") == self._written
        except (FileNotFoundError, UnicodeDecodeError):
            return False
        if still_ours:
            self.path.unlink(missing_ok=True)
        self._written = None
        return still_ours


def announce(sandbox: Sandbox, settings: SettingsFile) -> None:
    """Write the settings file and say where each stand-in serves."""
    settings.write("".join(f"{key}='{value}'\n" for key, value in sorted(sandbox.env().items())))
    for name, standin in sandbox.standins.items():
        print(f"{name + ':':<16} {standin.location}")
    path = settings.path
    print(f"Settings for the pipelines: {path} (set -a; . {path}; set +a); removed when the sandbox stops")
    print("Serving until Ctrl-C.", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the sandbox until SIGINT or SIGTERM, then stop it and remove its settings file."""
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--env-file",
        type=Path,
        default=ENV_FILE,
        help=f"where to write the pipelines' settings (default: {ENV_FILE})",
    )
    args = parser.parse_args(argv)
    settings = SettingsFile(args.env_file.resolve())
    try:
        serve_until_signalled(Sandbox(), lambda sandbox: announce(sandbox, settings))
    finally:
        settings.remove()


if __name__ == "__main__":
    main()
