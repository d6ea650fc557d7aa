"""Create what `prefect deploy --all` and the deployments' `pull` step need on a Prefect server.

`./dev prefect-setup` (or `python -m flows.prefect_setup`), against the server in `PREFECT_API_URL`:

* the process work pool every deployment in `prefect.yaml` names (`data-pipelines`) - without it
  `prefect deploy --all` fails with "work pool 'data-pipelines' does not exist";
* the Secret block the `pull` step reads the repository token from (`data-pipelines-git-token`).
  Its value comes from `DATA_PIPELINES_GIT_TOKEN` (read-only access to the repository); unset, a new
  block gets an empty value (a public repository, or a local one) and an existing block is kept.

Both names are read from `prefect.yaml`, never repeated here. Running it again changes nothing that
exists, except the token when `DATA_PIPELINES_GIT_TOKEN` is set (that is how it is rotated). The
token is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
from pathlib import Path
from typing import Any

import yaml

PREFECT_YAML = Path(__file__).resolve().parents[1] / "prefect.yaml"
GIT_READ_VARIABLE = "DATA_PIPELINES_GIT_TOKEN"  # the name of the variable holding the token
_SECRET_REFERENCE = re.compile(r"\{\{\s*prefect\.blocks\.secret\.([\w-]+)\s*\}\}")


def required_objects(prefect_yaml: Path = PREFECT_YAML) -> tuple[set[str], set[str]]:
    """Return the work pools and Secret blocks `prefect.yaml` refers to.

    Args:
        prefect_yaml: The deployment file.

    Returns:
        (work pool names, Secret block names).
    """
    config = yaml.safe_load(prefect_yaml.read_text())
    pools = {d["work_pool"]["name"] for d in config["deployments"] if d.get("work_pool")}
    secrets = set(_SECRET_REFERENCE.findall(yaml.safe_dump(config.get("pull") or [])))
    return pools, secrets


async def _ensure_work_pool(name: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    async with get_client() as client:
        try:
            pool = await client.read_work_pool(name)
        except ObjectNotFound:
            template: dict[str, Any] = ProcessWorker.get_default_base_job_template()
            await client.create_work_pool(
                WorkPoolCreate(name=name, type="process", base_job_template=template)
            )
            return f"work pool '{name}' (process): created"
        return f"work pool '{name}' ({pool.type}): exists, left as it is"


def _ensure_secret(name: str) -> str:
    from prefect.blocks.system import Secret
    from pydantic import SecretStr

    token = os.environ.get(GIT_READ_VARIABLE)
    try:
        Secret.load(name)
        exists = True
    except ValueError:  # Prefect: "Unable to find block document named ..."
        exists = False
    if exists and token is None:
        return f"Secret block '{name}': exists, left as it is ({GIT_READ_VARIABLE} not set)"
    Secret(value=SecretStr(token or "")).save(name, overwrite=True)
    source = f"from {GIT_READ_VARIABLE}" if token is not None else f"empty ({GIT_READ_VARIABLE} not set)"
    return f"Secret block '{name}': {'updated' if exists else 'created'}, value {source}"


def main(argv: list[str] | None = None) -> int:
    """Create the missing work pools and Secret blocks; print one line per object."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.parse_args(argv)
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        print(
            "PREFECT_API_URL is not set: point it at the Prefect server to set up (e.g. http://127.0.0.1:4200/api)."
        )
        return 2
    pools, secrets = required_objects()
    for pool in sorted(pools):
        print(asyncio.run(_ensure_work_pool(pool)))
    for secret in sorted(secrets):
        print(_ensure_secret(secret))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
