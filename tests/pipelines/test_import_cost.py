"""Issue 14 (per-run fixed cost): what a pipeline process imports, and the collector settings it runs with.

Every pipeline run is a fresh process, so what its modules import is paid on every run: SQLAlchemy
(~0.3 s) only where a SQL source needs it, `cryptography` (~0.15 s) only for a Snowflake key pair.
Each check runs in a fresh interpreter: this session has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from utils.gc_settings import YOUNG_GENERATION_THRESHOLD


def imported_by(module: str) -> dict[str, object]:
    code = (
        "import gc, json, sys\n"
        f"import {module}\n"
        "print(json.dumps({'modules': sorted(m for m in ('sqlalchemy', 'cryptography') if m in sys.modules),"
        " 'threshold': gc.get_threshold()}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("pipeline", ["currencies", "exchange_rates", "hubspot"])
def test_http_pipelines_import_neither_sqlalchemy_nor_cryptography(pipeline: str) -> None:
    assert imported_by(f"pipelines.{pipeline}")["modules"] == []


def test_the_products_pipeline_imports_sqlalchemy_but_not_cryptography() -> None:
    assert imported_by("pipelines.products")["modules"] == ["sqlalchemy"]


@pytest.mark.parametrize("package", ["pipelines", "flows"])
def test_pipeline_and_flow_processes_collect_the_young_generation_less_often(package: str) -> None:
    # utils/gc_settings.py: the collector's default (700) runs hundreds of useless collections
    # while dlt, SQLAlchemy and Prefect load.
    threshold = imported_by(package)["threshold"]
    assert isinstance(threshold, list) and threshold[0] >= YOUNG_GENERATION_THRESHOLD > 700
