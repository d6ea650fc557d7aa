"""Read what a flow run left in Prefect: its logs, task runs and load artifact."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
    TaskRunFilter,
)
from prefect.logging.handlers import APILogHandler


def run_logs(flow_run_id: UUID | None) -> list[str]:
    """Every log message of the flow run (its tasks' included)."""
    assert flow_run_id is not None
    APILogHandler().flush()  # ships the queued log batch to the API and waits

    async def read() -> list[str]:
        async with get_client() as client:
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
            )
            return [log.message for log in logs]

    return asyncio.run(read())


def task_runs(flow_run_id: UUID | None) -> list[Any]:
    """The flow run's task runs."""
    assert flow_run_id is not None

    async def read() -> list[Any]:
        async with get_client() as client:
            return await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                task_run_filter=TaskRunFilter(),
            )

    return asyncio.run(read())


def load_report(flow_run_id: UUID | None) -> tuple[str | None, str | None, list[dict[str, Any]]]:
    """The flow run's one table artifact: its key, description and rows."""
    assert flow_run_id is not None

    async def read() -> list[Any]:
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )

    [artifact] = asyncio.run(read())
    assert artifact.type == "table"
    data = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    return artifact.key, artifact.description, list(data)
