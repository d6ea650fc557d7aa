"""Stand-ins added with `./dev new-pipeline`: one module per pipeline, found automatically.

Each module defines `class StandIn` with `__init__(self, sandbox)`, `start()`, `stop()`,
`env() -> dict[str, str]` (the dlt settings that point its source at it) and `simulate_activity()`.
`sandbox.Sandbox` starts every one of them, so the main job runs new pipelines with no other edit.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sandbox import Sandbox


class StandIn(Protocol):
    """What `Sandbox` expects of a generated stand-in."""

    def start(self) -> None:
        """Start serving (after the shared servers have started)."""

    def stop(self) -> None:
        """Stop serving; safe to call twice."""

    def env(self) -> dict[str, str]:
        """The dlt settings, as environment variables, that point the pipeline source here."""
        ...

    def simulate_activity(self) -> None:
        """Change some data, as a working day would."""


def load_standins(sandbox: Sandbox) -> list[StandIn]:
    """One instance of every stand-in module in this package, in name order."""
    found: list[StandIn] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.append(module.StandIn(sandbox))
    return found
