"""The pipeline lock: one run of a pipeline at a time, whichever deployment started it.

Each run holds its pipeline's one-slot Prefect global concurrency limit `pipeline-<name>`, created
on first use. Each deployment's own `concurrency_limit` in prefect.yaml stops a second run of the
same deployment before it starts; this lock covers runs of different deployments of the same
pipeline (the scheduled one and a manual full refresh, say).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from prefect import get_run_logger
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, VariableCreate, VariableUpdate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder, FlowRun
from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError
from prefect.concurrency.sync import concurrency
from prefect.exceptions import (
    MissingContextError,
    ObjectAlreadyExists,
    ObjectNotFound,
    PrefectHTTPStatusError,
)
from prefect.runtime import flow_run as flow_run_runtime

from utils.errors import PermanentPipelineError

# How long a run waits for another run of the same pipeline to finish before it gives up (and
# alerts). Longer than any normal run, full refreshes included, shorter than a day of schedules.
PIPELINE_LOCK_TIMEOUT_SECONDS = 3 * 60 * 60
# The holder renews its lease while it runs; a slot whose holder died (or failed to release it)
# while the server kept its lease frees itself after this long - Prefect's minimum.
PIPELINE_LOCK_LEASE_SECONDS = 60
# A waiting run looks at who holds the slot this often (and at the end of its wait).
PIPELINE_LOCK_CHECK_SECONDS = 20.0
# A slot must look orphaned on two looks this far apart before it is freed: a new holder records
# itself within milliseconds of taking the slot, so it is never mistaken for the dead one.
ORPHAN_CONFIRM_SECONDS = 3.0
# A taken slot with no holder on record at all (a holder from before holders were recorded) is
# freed after this long: longer than any lease, so a live holder's lease would have expired too.
UNRECORDED_HOLDER_GRACE_SECONDS = 3 * PIPELINE_LOCK_LEASE_SECONDS

_log = logging.getLogger(__name__)


class PipelineBusyError(PermanentPipelineError):
    """Another run of the same pipeline held its lock for longer than this run was willing to wait."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds a pipeline's lock, as its holder recorded it in the Prefect variable `lock_record_name`.

    Attributes:
        flow_run_id: The holder's flow run, or None for a holder outside any flow run (a script).
        host: The holder's machine.
        pid: The holder's process.
        since: When it took the lock (UTC, ISO 8601).
        token: Unique to this taking of the lock.
    """

    flow_run_id: str | None
    host: str
    pid: int
    since: str
    token: str = ""

    def as_value(self) -> dict[str, str | int | None]:
        """The record as the variable's JSON value."""
        return {
            "flow_run_id": self.flow_run_id,
            "host": self.host,
            "pid": self.pid,
            "since": self.since,
            "token": self.token,
        }

    @classmethod
    def from_value(cls, value: object) -> LockHolder | None:
        """The record from the variable's value; None for anything that is not one."""
        if not isinstance(value, dict):
            return None
        try:
            return cls(
                flow_run_id=value.get("flow_run_id"),
                host=str(value["host"]),
                pid=int(value["pid"]),
                since=str(value["since"]),
                token=str(value.get("token", "")),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class LockStatus:
    """What a waiting run found when it looked at the lock."""

    free: bool
    holder: LockHolder | None
    # The holder's flow run as Prefect has it (None when the holder has none, or it is deleted).
    holder_run: FlowRun | None
    # Why the taken slot belongs to nobody, or None when its holder may still be running.
    orphaned_because: str | None
    # Since when (time.monotonic) the slot has been seen taken with no holder on record.
    unrecorded_since: float | None = None

    def describe_holder(self) -> str:
        """The holder in words, for the busy error and the logs."""
        if self.holder is None:
            return "a holder that did not record itself"
        if self.holder_run is not None:
            state = self.holder_run.state.name if self.holder_run.state else "no state"
            return (
                f"flow run '{self.holder_run.name}' ({self.holder_run.id}, {state}), holding it since "
                f"{self.holder.since}"
            )
        return f"a process outside any flow run (pid {self.holder.pid} on {self.holder.host}) since {self.holder.since}"


@contextmanager
def pipeline_lock(pipeline_name: str, timeout_seconds: float | None = None) -> Iterator[None]:
    """Hold the pipeline's one-slot Prefect global concurrency limit for the duration of the block.

    Two runs of one pipeline would share its dlt working directory and state and corrupt both. The
    slot is a lease that the holder renews; if its process dies while the server keeps the lease,
    the slot frees itself within the lease duration (a minute).

    A Prefect server restart can lose the lease (the default lease storage is in memory) while the
    slot stays counted in the database: nothing would ever free it. So the holder also records
    itself - its flow run, machine, process and start time - in the Prefect variable
    `pipeline_lock__<name>`, and a run that finds the slot taken looks at that record every
    `PIPELINE_LOCK_CHECK_SECONDS`. The slot is an orphan when its holder's flow run has ended
    (Completed, Failed, Crashed, Cancelled) or no longer exists, when the holder is an earlier try
    of the waiting run's own flow run (a task retry), or when it is taken with no record for longer
    than any lease; seen so twice, `ORPHAN_CONFIRM_SECONDS` apart, the waiting run frees it, logs a
    warning naming the dead holder and takes the lock. A holder outside any flow run cannot be
    checked and is waited for.

    Args:
        pipeline_name: The dlt pipeline name; the limit is `pipeline-<name>`.
        timeout_seconds: How long to wait for a run that holds the slot; by default
            `PIPELINE_LOCK_TIMEOUT_SECONDS`.

    Raises:
        PipelineBusyError: A live holder kept the slot for the whole wait; the message names it.
    """
    limit_name = lock_name(pipeline_name)
    timeout = PIPELINE_LOCK_TIMEOUT_SECONDS if timeout_seconds is None else timeout_seconds
    started = time.monotonic()
    deadline = started + timeout
    unrecorded_since: float | None = None  # since when the slot is taken with no holder on record
    ensured = False
    with ExitStack() as stack:
        while True:
            wait = max(1.0, min(PIPELINE_LOCK_CHECK_SECONDS, deadline - time.monotonic()))
            try:
                stack.enter_context(
                    concurrency(
                        limit_name,
                        occupy=1,
                        timeout_seconds=wait,
                        lease_duration=PIPELINE_LOCK_LEASE_SECONDS,
                        strict=True,
                        holder=_lease_holder(),
                    )
                )
                break
            except ConcurrencySlotAcquisitionError:
                # `strict`: the limit does not exist yet (a new pipeline, a fresh server), or the
                # request failed. Create it if missing and try once more; looking it up before
                # every run instead would cost every run a request.
                if ensured:
                    raise
                _ensure_lock(limit_name)
                ensured = True
            except TimeoutError as exc:
                if not ensured:  # the wait can end before the answer that the limit is missing
                    _ensure_lock(limit_name)
                    ensured = True
                status = _look(pipeline_name, unrecorded_since)
                unrecorded_since = status.unrecorded_since
                if status.free:
                    continue
                if status.orphaned_because is not None:
                    # Seen again a moment later with the same holder on record: not a new holder
                    # that has taken the slot but not yet recorded itself.
                    time.sleep(ORPHAN_CONFIRM_SECONDS)
                    again = _look(pipeline_name, unrecorded_since)
                    if again.orphaned_because is not None and again.holder == status.holder:
                        _free_orphaned_slot(pipeline_name, again)
                        unrecorded_since = None
                    continue
                if time.monotonic() >= deadline:
                    raise PipelineBusyError(_busy_message(pipeline_name, status, timeout)) from exc
        me = LockHolder(
            flow_run_id=flow_run_runtime.get_id(),
            host=socket.gethostname(),
            pid=os.getpid(),
            since=datetime.now(UTC).isoformat(timespec="seconds"),
            token=uuid4().hex,
        )
        # Left in place when the lock is released: the next holder overwrites it, and a waiter only
        # reads it while the slot is taken - then it names the holder, or the dead one to free.
        _write_record(pipeline_name, me)
        yield


def _look(pipeline_name: str, unrecorded_since: float | None) -> LockStatus:
    """`inspect_lock`, plus the rule for a slot taken with no holder on record for too long."""
    status = inspect_lock(pipeline_name)
    if status.free or status.holder is not None:
        return status
    since = unrecorded_since if unrecorded_since is not None else time.monotonic()
    status = replace(status, unrecorded_since=since)
    if time.monotonic() - since >= UNRECORDED_HOLDER_GRACE_SECONDS:
        status = replace(
            status,
            orphaned_because=(
                f"it has been taken for over {UNRECORDED_HOLDER_GRACE_SECONDS:.0f} s with no holder on record"
            ),
        )
    return status


def _busy_message(pipeline_name: str, status: LockStatus, waited: float) -> str:
    """Why the run did not start and what to do - true for each kind of holder."""
    start = f"Pipeline '{pipeline_name}' did not start: its lock '{lock_name(pipeline_name)}' is held by "
    waited_for = f", and this run waited {waited:.0f} s for it."
    if status.holder is None:
        return (
            start
            + "a holder that did not record itself (one from before holders were recorded)"
            + waited_for
            + f" A waiting run frees such a slot once it has been taken for {UNRECORDED_HOLDER_GRACE_SECONDS:.0f} s; "
            "the next scheduled run will."
        )
    if status.holder_run is None:
        return (
            start + status.describe_holder() + waited_for + " It is not a flow run: if that process is "
            f"stuck, stop it; its slot frees itself within {PIPELINE_LOCK_LEASE_SECONDS} s of it ending."
        )
    return (
        start + status.describe_holder() + waited_for + " If that run is stuck, cancel it "
        f"(`prefect flow-run cancel {status.holder_run.id}`); the next run frees the lock once that run "
        "has ended, even if it could not release it."
    )


def lock_name(pipeline_name: str) -> str:
    """Name of the global concurrency limit that serialises runs of `pipeline_name`."""
    return f"pipeline-{pipeline_name}"


def lock_record_name(pipeline_name: str) -> str:
    """Name of the Prefect variable in which the lock's holder records itself."""
    return "pipeline_lock__" + "".join(c if c.isalnum() else "_" for c in pipeline_name.lower())


def inspect_lock(pipeline_name: str) -> LockStatus:
    """Whether the pipeline's lock is free, who holds it, and whether that holder still exists.

    Args:
        pipeline_name: The dlt pipeline name.

    Returns:
        The lock's status.
    """
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(lock_name(pipeline_name))
        if limit.active_slots < limit.limit:
            return LockStatus(free=True, holder=None, holder_run=None, orphaned_because=None)
        variable = client.read_variable_by_name(lock_record_name(pipeline_name))
        holder = LockHolder.from_value(variable.value) if variable is not None else None
        if holder is None or holder.flow_run_id is None:
            return LockStatus(free=False, holder=holder, holder_run=None, orphaned_because=None)
        if holder.flow_run_id == flow_run_runtime.get_id():
            # Our flows run one load task at a time: a slot held in this flow run's name while it
            # waits was taken by an earlier try of its task (a retry) that ended without releasing it.
            return LockStatus(
                free=False,
                holder=holder,
                holder_run=None,
                orphaned_because=(
                    f"it was taken at {holder.since} by an earlier try of this same flow run "
                    f"({holder.flow_run_id}), which ended without releasing it (a Prefect server restart "
                    "loses the lease that would have freed it)"
                ),
            )
        try:
            run = client.read_flow_run(UUID(holder.flow_run_id))
        except (ObjectNotFound, ValueError):
            return LockStatus(
                free=False,
                holder=holder,
                holder_run=None,
                orphaned_because=f"its holder, flow run {holder.flow_run_id}, no longer exists",
            )
    state = run.state
    if state is None or not state.is_final():
        return LockStatus(free=False, holder=holder, holder_run=run, orphaned_because=None)
    return LockStatus(
        free=False,
        holder=holder,
        holder_run=run,
        orphaned_because=(
            f"its holder, flow run '{run.name}' ({run.id}), ended {state.name} at "
            f"{state.timestamp.isoformat(timespec='seconds') if state.timestamp else 'an unknown time'} "
            "without releasing it (a Prefect server restart loses the lease that would have freed it)"
        ),
    )


def _free_orphaned_slot(pipeline_name: str, status: LockStatus) -> None:
    """Give back the slot of a holder that no longer exists, and forget its record."""
    message = f"Pipeline '{pipeline_name}': freeing the lock '{lock_name(pipeline_name)}': {status.orphaned_because}."
    _logger().warning(message)
    with get_client(sync_client=True) as client:
        client.release_concurrency_slots(names=[lock_name(pipeline_name)], slots=1, occupancy_seconds=1.0)
        if status.holder is not None:
            _delete_record_if(client, pipeline_name, status.holder)


def _lease_holder() -> ConcurrencyLeaseHolder | None:
    # Shown with the lease on the server; the flow run is what an operator looks for.
    flow_run_id = flow_run_runtime.get_id()
    return ConcurrencyLeaseHolder(type="flow_run", id=UUID(flow_run_id)) if flow_run_id else None


def _write_record(pipeline_name: str, holder: LockHolder) -> None:
    name = lock_record_name(pipeline_name)
    with get_client(sync_client=True) as client:
        # Updated in place (one request); created the first time only.
        try:
            client.update_variable(VariableUpdate(name=name, value=holder.as_value()))
            return
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code != 404:
                raise
        with suppress(ObjectAlreadyExists):
            client.create_variable(
                VariableCreate(name=name, value=holder.as_value(), tags=["data-pipelines"])
            )
            return
        client.update_variable(VariableUpdate(name=name, value=holder.as_value()))  # created meanwhile


def _delete_record_if(client: SyncPrefectClient, pipeline_name: str, holder: LockHolder) -> None:
    """Delete the lock record if it still names `holder` (not a newer holder's)."""
    name = lock_record_name(pipeline_name)
    variable = client.read_variable_by_name(name)
    if variable is not None and LockHolder.from_value(variable.value) == holder:
        with suppress(ObjectNotFound):
            client.delete_variable_by_name(name)


def _logger() -> logging.Logger | logging.LoggerAdapter[Any]:
    try:
        return get_run_logger()
    except MissingContextError:
        return _log


def _ensure_lock(limit_name: str) -> None:
    # Created on first use rather than by hand, so a new pipeline (or a fresh server) needs no setup.
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(limit_name)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):  # another run created it in the meantime
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=limit_name, limit=1))
