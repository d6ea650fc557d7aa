"""The pipeline lock (flows/lock.py): one run of a pipeline at a time."""

from __future__ import annotations

import threading

import pytest

from flows import lock
from flows.currencies import currencies_flow
from sandbox.frankfurter import FrankfurterServer
from tests.flows.prefect_api import task_runs


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
    with pytest.raises(lock.PipelineBusyError, match="pipeline-currencies"):
        blocked.result()
    assert frankfurter.request_count("/v1/currencies") == 0
    monkeypatch.setattr(lock, "PIPELINE_LOCK_TIMEOUT_SECONDS", 30.0)  # the release is not instant
    assert currencies_flow(return_state=True).is_completed()  # the lock is free again
