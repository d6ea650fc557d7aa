"""What every flow gets from flows/common.py: the retry rule, the run lock, progress and the report."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

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
from sandbox.postgres import CatalogueMutator
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


def test_no_load_task_is_cached_or_persists_its_result() -> None:
    # Prefect's default cache policy (inputs, task source, flow run) would hand a second call in the
    # same flow run the first call's result once result persistence is switched on - a load
    # silently skipped - and it hashes the inputs and the task's source on every run.
    from prefect import Task
    from prefect.cache_policies import NO_CACHE

    tasks = [
        obj
        for flow in common.all_flows().values()
        for obj in vars(__import__(flow.fn.__module__, fromlist=["*"])).values()
        if isinstance(obj, Task)
    ]
    assert len(tasks) >= len(common.all_flows())
    for task in tasks:
        assert task.cache_policy is NO_CACHE, task.name
        assert task.persist_result is False, task.name


def _fresh_interpreter(code: str) -> dict[str, object]:
    """Run `code` in a new interpreter (this session has imported everything) and read its JSON line."""
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(common.__file__).parents[1],
        capture_output=True,
        text=True,
        check=True,
        timeout=180,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_flow_process_freezes_prefects_objects_before_its_pipeline_loads() -> None:
    # Issue 14: a full collection - during the run and several at exit - no longer walks Prefect.
    found = _fresh_interpreter(
        "import gc, json, sys\n"
        "import flows.currencies\n"
        "print(json.dumps({'frozen': gc.get_freeze_count(), 'duckdb': 'duckdb' in sys.modules}))"
    )
    assert found["duckdb"] is False
    assert isinstance(found["frozen"], int) and found["frozen"] > 50_000


@pytest.mark.parametrize("loaded_first", ["duckdb", "dlt"])
def test_nothing_is_frozen_once_dlt_or_duckdb_is_loaded(loaded_first: str) -> None:
    # DuckDB objects kept alive to the end (frozen, or held by frozen dlt objects) are reported as
    # leaks at exit by DuckDB's bindings.
    found = _fresh_interpreter(
        f"import gc, json\nimport {loaded_first}\nimport flows.common\n"
        "print(json.dumps({'frozen': gc.get_freeze_count()}))"
    )
    assert found == {"frozen": 0}


def test_a_flow_process_loads_and_exits_without_leak_reports(
    frankfurter: FrankfurterServer, warehouse: Path
) -> None:
    done = _flow_process("currencies")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "leak" not in done.stderr.lower(), done.stderr[-3000:]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from currencies.currencies").fetchone() == (
            len(frankfurter.currencies),
        )
    # The process ends without the interpreter's teardown (flows.common.run_as_command), after the
    # exit handlers: Prefect's ship the last log lines and the report before it goes.
    flow_run_id = _flow_run_id(done.stdout + done.stderr)
    assert any("Finished in state Completed()" in line for line in run_logs(flow_run_id))
    key, _, rows = load_report(flow_run_id)
    assert key == "currencies-load"
    assert rows


def test_a_failed_flow_process_shows_the_error_and_exits_with_status_1(
    catalogue: CatalogueMutator, warehouse: Path
) -> None:
    # A rejected password: a permanent error, so no retry waits; DuckDB is loaded by then, whose
    # bindings reported "leaked" objects at a normal interpreter exit.
    wrong = "wrong-password-1b7f"
    done = _flow_process("products", SOURCES__PRODUCTS__CREDENTIALS__PASSWORD=wrong)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    assert "Traceback" in done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith("utils.errors.ConfigurationError: products:"), last
    assert "password was rejected" in last
    assert "leak" not in done.stderr.lower(), done.stderr[-3000:]
    assert wrong not in output
    assert any("Finished in state Failed" in line for line in run_logs(_flow_run_id(output)))


def _flow_process(name: str, **settings: str) -> Any:
    """`python flows/<name>.py` as a user runs it, against the test session's Prefect API.

    Returns:
        The finished `subprocess.CompletedProcess` (output captured as text).
    """
    import os
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(settings, PREFECT_API_URL=str(PREFECT_API_URL.value()))
    return subprocess.run(
        [sys.executable, f"flows/{name}.py"],
        cwd=Path(common.__file__).parents[1],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def _flow_run_id(output: str) -> Any:
    """The id of the flow run whose name a flow process printed (Prefect logs it on every line)."""
    import re

    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    names = re.findall(r"Flow run '([\w-]+)' - ", output)
    assert names, output[-3000:]
    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[names[-1]]))
        )
    return run.id
