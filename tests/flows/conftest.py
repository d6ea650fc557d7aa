"""Flow tests run for real under Prefect's test harness (a temporary local API and database)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prefect import Task
from prefect.testing.utilities import prefect_test_harness


@pytest.fixture(scope="session", autouse=True)
def prefect_api() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
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
