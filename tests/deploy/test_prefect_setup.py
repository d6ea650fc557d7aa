"""The scripted set-up (`./dev prefect-setup`) is all a fresh Prefect server needs for `prefect deploy --all`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from flows.prefect_setup import required_objects
from tests.deploy.conftest import (
    GIT_TOKEN_BLOCK,
    ROOT,
    WORK_POOL,
    Snapshot,
    prefect_setup,
    running_prefect_server,
)

# End to end (slow): `./dev test` skips it; `./dev test-slow` and `.ci/run` run it.
pytestmark = pytest.mark.slow


def test_the_set_up_reads_the_names_prefect_yaml_uses() -> None:
    assert required_objects() == ({WORK_POOL}, {GIT_TOKEN_BLOCK})


def test_the_dev_task_runs_the_set_up() -> None:
    body = (ROOT / "dev").read_text().split("  prefect-setup)", 1)[1].split(";;", 1)[0]
    assert "python -m flows.prefect_setup" in body


@pytest.mark.timeout(600)
def test_prefect_deploy_all_works_on_a_fresh_server_after_the_scripted_set_up(
    code_snapshot: Snapshot, tmp_path: Path
) -> None:
    with running_prefect_server(tmp_path) as server:
        # What the README's set-up fixes: a fresh server has no work pool for the deployments.
        before = subprocess.run(
            [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
            cwd=code_snapshot.path,
            env=server.env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert before.returncode != 0
        said = " ".join(
            re.sub(r"[\u2500-\u257f]", " ", before.stdout + before.stderr).split()
        )  # no box lines
        assert re.search(f"work pool '{WORK_POOL}' (which )?does not exist", said), said

        first = prefect_setup(server)
        assert f"work pool '{WORK_POOL}' (process): created" in first
        assert f"Secret block '{GIT_TOKEN_BLOCK}': created" in first
        # Idempotent: a second run changes nothing...
        second = prefect_setup(server)
        assert "created" not in second and "updated" not in second
        # ...except the token, when one is given (how it is rotated) - and it is never printed.
        token = "github-read-token-for-the-test"
        rotated = prefect_setup(server, DATA_PIPELINES_GIT_TOKEN=token)
        assert f"Secret block '{GIT_TOKEN_BLOCK}': updated" in rotated and token not in rotated
        read = subprocess.run(
            [
                sys.executable,
                "-c",
                f"from prefect.blocks.system import Secret; print(Secret.load({GIT_TOKEN_BLOCK!r}).get())",
            ],
            env=server.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert read.stdout.strip() == token

        server.cli("deploy", "--all", cwd=code_snapshot.path)
        [pool] = server.post("/work_pools/filter")
        assert (pool["name"], pool["type"]) == (WORK_POOL, "process")
        assert server.post("/deployments/filter")
