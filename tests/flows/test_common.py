"""What every flow gets from flows/common.py: the retry rule, the run lock, progress and the report."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest
from dlt.common.configuration.exceptions import ConfigurationValueError
from dlt.common.destination.exceptions import DestinationTerminalException, DestinationTransientException
from dlt.common.schema.exceptions import DataValidationError
from dlt.pipeline.exceptions import PipelineStepFailed
from prefect.states import Failed

from flows import common
from flows.currencies import currencies_flow, load_currencies
from sandbox.frankfurter import FrankfurterServer
from tests.flows.prefect_api import load_report, run_logs
from utils.errors import (
    ConfigurationError,
    PipelineError,
    SchemaDriftError,
    UpstreamRequestError,
    UpstreamUnavailableError,
)


def _chained(outer: BaseException, cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise outer from inner
    except BaseException as raised:
        return raised


def _retried(exc: BaseException) -> bool:
    return common.retry_unless_permanent(load_currencies, None, Failed(data=exc))  # type: ignore[arg-type]


def _step_failed(cause: BaseException) -> BaseException:
    # How dlt reports a failed step: PipelineStepFailed raised from the step's own error.
    pipeline = SimpleNamespace(pipeline_name="products", has_pending_data=False)
    return _chained(PipelineStepFailed(pipeline, "load", "1.0", cause), cause)


@pytest.mark.parametrize(
    "error",
    [
        ConfigurationError("sources.hubspot.access_token is wrong"),
        UpstreamRequestError("HTTP 404"),
        SchemaDriftError("products.price changed type"),
        _chained(PipelineError("step failed"), ConfigurationError("bad password")),
        _step_failed(ConfigurationValueError("destination.snowflake.credentials.host is not a host")),
        _step_failed(DataValidationError("products", "products", "price", "data_type", "freeze", None, {})),
        _step_failed(DestinationTerminalException("permission denied on schema PRODUCTS")),
    ],
    ids=[
        "credentials",
        "rejected-request",
        "schema-drift",
        "wrapped",
        "dlt-config",
        "dlt-contract",
        "dlt-terminal",
    ],
)
def test_errors_that_cannot_heal_are_not_retried(error: BaseException) -> None:
    assert _retried(error) is False


@pytest.mark.parametrize(
    "error",
    [
        UpstreamUnavailableError("HTTP 503 after 5 attempts"),
        _chained(PipelineError("failed at the load step"), DestinationTransientException("connection reset")),
        RuntimeError("something unexpected"),
    ],
    ids=["upstream-5xx", "destination-blip", "unknown"],
)
def test_errors_that_may_heal_are_retried(error: BaseException) -> None:
    assert _retried(error) is True


def test_the_run_publishes_a_load_report_matching_the_destination_and_logs_progress(
    frankfurter: FrankfurterServer, warehouse: Path
) -> None:
    state = currencies_flow(return_state=True)

    assert state.is_completed()
    summary = state.result()
    key, description, rows = load_report(state.state_details.flow_run_id)
    assert key == "currencies-load"
    [row] = rows
    with duckdb.connect(str(warehouse), read_only=True) as con:
        in_table = con.execute("select count(*) from currencies.currencies").fetchone()
    assert in_table == (len(frankfurter.currencies),)
    assert row["pipeline"] == "currencies" and row["table"] == "currencies"
    assert row["load id"] == summary.load_ids[0]
    assert row["rows loaded"] == row["rows in table"] == len(frankfurter.currencies)
    assert row["duration (s)"] >= 0
    assert description is not None and "currencies: 30 rows into duckdb" in description
    logs = "\n".join(run_logs(state.state_details.flow_run_id))
    # dlt's own progress, step by step, reached the run log.
    for step in ("Extract currencies", "Normalize currencies", "Load currencies"):
        assert step in logs, logs
    assert f"currencies: {len(frankfurter.currencies)}" in logs


def test_no_flow_module_imports_dlt() -> None:
    """Flows hand everything dlt to the run engine: they take the lock, call run(), publish."""
    import ast

    for path in sorted((Path(common.__file__).parent).glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not [n for n in names if n == "dlt" or n.startswith("dlt.")], (
                f"{path.name} imports {names}"
            )


def test_a_warning_from_a_source_module_reaches_the_flow_run_log() -> None:
    # prefect.toml's `logging.extra_loggers`: a source's own warning (e.g. a HubSpot property that
    # changed type) is in the run's log in the Prefect UI, not only on the worker's console.
    import logging

    from prefect import flow

    @flow(name="source-warning-probe")
    def probe() -> None:
        logging.getLogger("sources.probe").warning("probe: property renewal_at changed type")

    state = probe(return_state=True)
    assert state.is_completed()
    assert any(
        "property renewal_at changed type" in line for line in run_logs(state.state_details.flow_run_id)
    )
