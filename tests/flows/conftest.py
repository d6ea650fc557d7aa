"""Flow tests run for real under Prefect's test harness (a temporary local API and database)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from prefect import Task
from prefect.testing.utilities import prefect_test_harness


@pytest.fixture(scope="session", autouse=True)
def prefect_api() -> Iterator[None]:
    # Generous: on a busy 2-core machine (other runs, xdist workers) the server takes minutes to start.
    with prefect_test_harness(server_startup_timeout=300):
        yield


@pytest.fixture
def no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every task's retry count and condition but drop the waits (10-90 s) between tries.

    The delays themselves are checked by the convention tests; here they would only slow the suite.
    """
    from flows.common import all_flows

    for flow in all_flows().values():
        module = __import__(flow.fn.__module__, fromlist=["*"])
        for obj in vars(module).values():
            if isinstance(obj, Task):
                monkeypatch.setattr(obj, "retry_delay_seconds", [0.0] * (obj.retries or 0))


class LoadFailure:
    """Makes the first load that reaches the end of its jobs fail, as a dropped warehouse connection would.

    Every job of the package has run, so the data is in the destination, but the package is not
    marked complete: dlt keeps it pending in the working directory for the next try.
    """

    def __init__(self) -> None:
        self.failed_load_ids: list[str] = []


@pytest.fixture
def load_fails_once(monkeypatch: pytest.MonkeyPatch) -> LoadFailure:
    from dlt.common.destination.exceptions import DestinationTransientException
    from dlt.load.load import Load

    failure = LoadFailure()
    original = Load.complete_package

    def complete_package(self: Load, load_id: str, *args: Any, **kwargs: Any) -> None:
        if not failure.failed_load_ids:
            failure.failed_load_ids.append(load_id)
            raise DestinationTransientException("connection to the warehouse was reset (injected)")
        original(self, load_id, *args, **kwargs)

    monkeypatch.setattr(Load, "complete_package", complete_package)
    return failure
