"""The pipeline lock (flows/lock.py): one run of a pipeline at a time."""

from __future__ import annotations

import os
import threading

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
from prefect.exceptions import ObjectNotFound

from flows import lock
from flows.currencies import currencies_flow
from sandbox.frankfurter import FrankfurterServer
from tests.flows.prefect_api import run_logs, task_runs


@pytest.mark.usefixtures("no_retry_delay")
def test_a_second_run_of_the_same_pipeline_waits_for_the_lock_and_gives_up_without_retries(
    frankfurter: FrankfurterServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lock, "PIPELINE_LOCK_TIMEOUT_SECONDS", 1.0)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock.pipeline_lock("currencies"):
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(30)
        blocked = currencies_flow(return_state=True)
    finally:
        release.set()
        holder.join()

    assert blocked.is_failed()
    [run] = task_runs(blocked.state_details.flow_run_id)
    assert run.run_count == 1  # waiting longer would not help: a person must look
    with pytest.raises(lock.PipelineBusyError, match="pipeline-currencies") as busy:
        blocked.result()
    # True to the holder: a thread of this test, outside any flow run.
    assert "is held by a process outside any flow run" in str(busy.value)
    assert frankfurter.request_count("/v1/currencies") == 0
    monkeypatch.setattr(lock, "PIPELINE_LOCK_TIMEOUT_SECONDS", 30.0)  # the release is not instant
    assert currencies_flow(return_state=True).is_completed()  # the lock is free again


@pytest.mark.usefixtures("no_retry_delay")
def test_a_slot_left_by_a_holder_that_ended_is_freed_by_the_next_run(
    frankfurter: FrankfurterServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a Prefect server restart leaves (tests/operations measures the real thing): the slot
    # counted as taken, its lease gone, its holder's flow run over.
    first = currencies_flow(return_state=True)
    assert first.is_completed()
    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(
            lock.lock_name("currencies"), GlobalConcurrencyLimitUpdate(active_slots=1)
        )
    monkeypatch.setattr(lock, "PIPELINE_LOCK_TIMEOUT_SECONDS", 60.0)
    monkeypatch.setattr(lock, "PIPELINE_LOCK_CHECK_SECONDS", 2.0, raising=False)

    second = currencies_flow(return_state=True)

    assert second.is_completed()
    logs = "\n".join(run_logs(second.state_details.flow_run_id))
    assert "freeing the lock 'pipeline-currencies'" in logs
    assert f"({first.state_details.flow_run_id}), ended Completed" in logs
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(lock.lock_name("currencies")).active_slots == 0


def test_a_new_pipelines_lock_is_created_on_first_use_and_its_holder_recorded() -> None:
    # The limit and the record are created when first needed, not looked up before every run
    # (issue 14: each lookup is a request every run pays).
    name = "lock-first-use"
    with get_client(sync_client=True) as client:
        with pytest.raises(ObjectNotFound):
            client.read_global_concurrency_limit_by_name(lock.lock_name(name))
        assert client.read_variable_by_name(lock.lock_record_name(name)) is None

    pids = []
    for _ in range(2):  # created by the first run, updated in place by the second
        with lock.pipeline_lock(name), get_client(sync_client=True) as client:
            limit = client.read_global_concurrency_limit_by_name(lock.lock_name(name))
            assert (limit.limit, limit.active_slots) == (1, 1)
            variable = client.read_variable_by_name(lock.lock_record_name(name))
            holder = lock.LockHolder.from_value(variable.value if variable else None)
            assert holder is not None and holder.flow_run_id is None
            pids.append(holder.pid)
    assert pids == [os.getpid(), os.getpid()]
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(lock.lock_name(name)).active_slots == 0
