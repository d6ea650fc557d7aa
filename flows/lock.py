"""The pipeline lock: one run of a pipeline at a time, whichever deployment started it.

Each run holds its pipeline's one-slot Prefect global concurrency limit `pipeline-<name>`, created
on first use. Each deployment's own `concurrency_limit` in prefect.yaml stops a second run of the
same deployment before it starts; this lock covers runs of different deployments of the same
pipeline (the scheduled one and a manual full refresh, say).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from utils.errors import PermanentPipelineError

# How long a run waits for another run of the same pipeline to finish before it gives up (and
# alerts). Longer than any normal run, full refreshes included, shorter than a day of schedules.
PIPELINE_LOCK_TIMEOUT_SECONDS = 3 * 60 * 60
# The holder renews its lease while it runs; a slot whose holder died (or failed to release it)
# frees itself after this long - Prefect's minimum, so a lost slot never blocks a pipeline for long.
PIPELINE_LOCK_LEASE_SECONDS = 60


class PipelineBusyError(PermanentPipelineError):
    """Another run of the same pipeline held its lock for longer than this run was willing to wait."""


@contextmanager
def pipeline_lock(pipeline_name: str, timeout_seconds: float | None = None) -> Iterator[None]:
    """Hold the pipeline's one-slot Prefect global concurrency limit for the duration of the block.

    Two runs of one pipeline would share its dlt working directory and state and corrupt both. The
    slot is a lease that the holder renews; if its process dies, the slot frees itself within the
    lease duration (a minute), so a crash never blocks the pipeline for good.

    Args:
        pipeline_name: The dlt pipeline name; the limit is `pipeline-<name>`.
        timeout_seconds: How long to wait for a run that holds the slot; by default
            `PIPELINE_LOCK_TIMEOUT_SECONDS`.

    Raises:
        PipelineBusyError: The slot stayed taken for the whole wait (a stuck run: see its logs).
    """
    limit_name = lock_name(pipeline_name)
    timeout = PIPELINE_LOCK_TIMEOUT_SECONDS if timeout_seconds is None else timeout_seconds
    _ensure_lock(limit_name)
    with ExitStack() as stack:
        try:
            stack.enter_context(
                concurrency(
                    limit_name,
                    occupy=1,
                    timeout_seconds=timeout,
                    lease_duration=PIPELINE_LOCK_LEASE_SECONDS,
                    strict=True,
                )
            )
        except TimeoutError as exc:
            raise PipelineBusyError(
                f"Pipeline '{pipeline_name}': another run held the lock '{limit_name}' for the "
                f"{timeout:.0f} seconds this run waits, so it did not start. Find the running flow run "
                f"of '{pipeline_name}' in Prefect; if it is stuck, cancel it (the slot frees itself "
                "within a minute of its process ending)."
            ) from exc
        yield


def lock_name(pipeline_name: str) -> str:
    """Name of the global concurrency limit that serialises runs of `pipeline_name`."""
    return f"pipeline-{pipeline_name}"


def _ensure_lock(limit_name: str) -> None:
    # Created on first use rather than by hand, so a new pipeline (or a fresh server) needs no setup.
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(limit_name)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):  # another run created it in the meantime
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=limit_name, limit=1))
