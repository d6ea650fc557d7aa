"""The sandbox's stand-ins, one module per pipeline: the one way a stand-in is registered.

`sandbox/standins/<pipeline>.py` defines `class StandIn`, a `sandbox.base.StandIn` that
`sandbox.Sandbox` creates with `StandIn.from_sandbox(sandbox)`: it may use the sandbox's shared
PostgreSQL (`sandbox.postgres`, started first) and the size asked for the pipeline
(`sandbox.size(name, default)`). The built-in pipelines' stand-ins are registered this way, and
`./dev new-pipeline` writes one for each new pipeline, so the main job runs it with no other edit.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.base import StandIn


def registered() -> dict[str, type[StandIn]]:
    """Every registered stand-in class by pipeline name, in name order."""
    modules = sorted(info.name for info in pkgutil.iter_modules(__path__))
    return {name: importlib.import_module(f"{__name__}.{name}").StandIn for name in modules}
