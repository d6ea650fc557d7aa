"""Project-wide dlt runtime settings that cost time when wrong (issue 14)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dlt_telemetry_is_off_for_every_run_from_the_project() -> None:
    # dlt's anonymous telemetry posts from a background thread and waits for it at exit: about a
    # tenth of an incremental products run's CPU time (bench/products.py), and data leaving the
    # machine. The committed .dlt/config.toml switches it off for every process started here.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIME__")}
    code = (
        "from dlt.common.configuration.container import Container\n"
        "from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext\n"
        "print(Container()[PluggableRunContext].context.runtime_config.dlthub_telemetry)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "False"
