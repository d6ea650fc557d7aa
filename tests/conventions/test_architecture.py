"""The layer rules, checked by standard tools: import-linter's contracts and ruff's banned-api rule.

`.importlinter` holds the contracts (flows import pipelines, pipelines import sources, never upward;
sources and pipelines import no Prefect; flows import no dlt). `pyproject.toml` bans `os.environ`
and `os.getenv` in sources and pipelines (ruff TID251). Both run here over the repository, and over
a copy of `bad_repo/` to show that each rule bites.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BAD = Path(__file__).resolve().parent / "bad_repo"
BIN = Path(sys.executable).parent


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` over the packages under `root`, with this repository's contracts."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache", str(root / ".importlinter")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def banned_api(root: Path) -> subprocess.CompletedProcess[str]:
    """ruff's banned-api rule alone, with the project's settings as found under `root`."""
    return subprocess.run(
        [str(BIN / "ruff"), "check", "--select", "TID251", "--output-format", "concise", "--no-cache", "."],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def bad_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`bad_repo/` as importable packages, with this repository's contracts and ruff settings.

    The fixture itself has no `__init__.py` files (so the other convention tests can load its flows
    beside the real packages); here each layer becomes a regular package of its own.
    """
    copy = tmp_path_factory.mktemp("bad") / "repo"
    shutil.copytree(BAD, copy)
    for package in ("sources", "sources/bad_source", "pipelines", "flows", "utils"):
        (copy / package).mkdir(exist_ok=True)
        (copy / package / "__init__.py").touch()
    shutil.copy2(ROOT / ".importlinter", copy / ".importlinter")
    shutil.copy2(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def test_the_layers_keep_their_import_contracts() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_sources_and_pipelines_never_read_the_environment() -> None:
    result = banned_api(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_contracts_catch_the_bad_layers(bad_copy: Path) -> None:
    result = lint_imports(bad_copy)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "sources is not allowed to import prefect" in out
    assert "sources.bad_source.source -> prefect" in out
    assert "sources is not allowed to import pipelines" in out
    assert "sources.bad_source.source -> pipelines.bad_pipeline" in out
    assert "pipelines is not allowed to import prefect" in out
    assert "pipelines.bad_pipeline -> prefect" in out
    assert "pipelines is not allowed to import flows" in out
    assert "pipelines.bad_pipeline -> flows.bad_flow" in out
    assert "flows is not allowed to import dlt" in out
    assert "flows.bad_flow -> dlt" in out


def test_banned_api_catches_the_environment_reads(bad_copy: Path) -> None:
    result = banned_api(bad_copy)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(
        line.startswith("sources/bad_source/source.py:") and "`os.environ` is banned" in line
        for line in lines
    )
    assert any(
        line.startswith("pipelines/bad_pipeline.py:") and "`os.getenv` is banned" in line for line in lines
    )
    # The rule is scoped to sources and pipelines: flows and utils may read the environment.
    (bad_copy / "utils" / "settings.py").write_text("import os\n\nHOME = os.environ.get('HOME')\n")
    assert "utils/settings.py" not in banned_api(bad_copy).stdout
