"""The run engine: the failure rule over every dlt exception, dlt's private API, pending packages, the report."""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest
from dlt.common.configuration.container import Container
from dlt.common.configuration.providers.provider import ConfigProvider
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext
from dlt.common.exceptions import SignalReceivedException, TerminalException, TransientException
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines import currencies
from sandbox.frankfurter import FrankfurterServer
from sources.currencies import currencies_source
from utils.destinations import check_destination, make_pipeline
from utils.errors import DeterministicError, PermanentPipelineError, PipelineError, RunStopped
from utils.run_engine import (
    classify_type,
    dlt_private,
    has_refresh_package,
    is_permanent,
    report_to,
    run_pipeline,
    signal_name,
)
from utils.run_engine.failures import TRANSIENT_DLT_ERRORS, WRAPPER_DLT_ERRORS, stop_signal


def dlt_exception_classes() -> list[type[BaseException]]:
    """Every exception class defined in dlt's exception modules (optional extras that fail to import skipped)."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(dlt.__path__, "dlt."):
        if "exceptions" not in info.name.rsplit(".", 1)[-1]:
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # a destination whose client library is not installed
            continue
        for obj in vars(module).values():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__.startswith("dlt"):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return [found[name] for name in sorted(found)]


DLT_EXCEPTIONS = dlt_exception_classes()

# Deterministic by the issue's own list: each must be permanent.
NAMED_DETERMINISTIC = [
    "SchemaIdentifierNormalizationCollision",  # names that collide after normalisation
    "ColumnNameConflictException",
    "DataValidationError",  # schema contract violations
    "IncrementalCursorPathMissing",  # cursor problems
    "IncrementalCursorInvalidCoercion",
    "IncrementalCursorPathHasValueNone",
    "IncrementalPrimaryKeyMissing",
    "ConfigurationValueError",  # bad config values
    "ConfigValueCannotBeCoercedException",
    "ConfigFieldMissingException",
    "TerminalException",
    "DestinationTerminalException",
    "DatabaseUndefinedRelation",
]


def _instance(kind: type[BaseException]) -> BaseException:
    # dlt's constructors take many different arguments; the rule reads only the type and the chain.
    exc = kind.__new__(kind)
    BaseException.__init__(exc, f"{kind.__name__} (test)")
    return exc


def _wrapped(cause: BaseException) -> BaseException:
    """How a step failure reaches the flow: dlt's PipelineStepFailed raised from the step's error."""
    step = PipelineStepFailed.__new__(PipelineStepFailed)
    BaseException.__init__(step, "step failed")
    step.__cause__ = cause
    return step


def test_dlt_defines_the_exceptions_the_rule_names() -> None:
    names = {kind.__name__ for kind in DLT_EXCEPTIONS}
    assert len(DLT_EXCEPTIONS) > 150  # the enumeration found dlt's modules
    assert set(NAMED_DETERMINISTIC) <= names


@pytest.mark.parametrize(
    "kind", DLT_EXCEPTIONS, ids=lambda k: f"{k.__module__.removeprefix('dlt.')}.{k.__name__}"
)
def test_every_dlt_exception_follows_the_rule(kind: type[BaseException]) -> None:
    verdict = classify_type(kind)
    if issubclass(kind, KeyboardInterrupt):  # dlt's SignalReceivedException: a stop, not a failure
        assert verdict == "stopped"
    elif issubclass(kind, TransientException):
        assert verdict == "transient"
    elif issubclass(kind, TerminalException):
        assert verdict == "permanent"
    elif issubclass(kind, WRAPPER_DLT_ERRORS):
        assert verdict == "wrapper"
    elif kind in TRANSIENT_DLT_ERRORS:
        assert verdict == "transient"
    else:  # deterministic: the same data, settings and code raise it on every retry
        assert verdict == "permanent"
    if kind.__name__ in NAMED_DETERMINISTIC:
        assert verdict == "permanent"
    if verdict != "wrapper":
        # Wherever it sits in the chain of causes, the verdict is the same.
        assert is_permanent(_instance(kind)) is (verdict == "permanent")
        assert is_permanent(_wrapped(_instance(kind))) is (verdict == "permanent")


def test_only_these_dlt_exceptions_are_retried() -> None:
    # A new dlt exception that is retried shows up here for a person to look at.
    retried = {k.__name__ for k in DLT_EXCEPTIONS if classify_type(k) == "transient"}
    assert retried == {
        "DatabaseException",
        "DatabaseTransientException",
        "DestinationConnectionError",
        "DestinationException",
        "DestinationTransientException",
        "FollowupJobCreationFailedException",
        "InvalidPlaceholderCallback",
        "LoadClientJobRetry",
        "LoadClientNotConnected",
        "LoadJobTransientException",
        "SchemaUpdateTransientError",
        "TableChainFollowupJobCreationFailedException",
        "TransientException",
    }


def test_network_errors_and_unknown_errors_stay_retried() -> None:
    import requests

    for error in (
        requests.ConnectionError("connection reset"),
        requests.Timeout("read timed out"),
        TimeoutError(),
        ConnectionResetError(),
        RuntimeError("something unexpected"),
    ):
        assert is_permanent(_wrapped(error)) is False, error


# -- a deterministic dlt error through the engine ------------------------------------------------


def test_a_cursor_problem_fails_permanently_naming_the_resource(warehouse: Path) -> None:
    @dlt.resource(name="orders", write_disposition="append")
    def orders(
        updated: dlt.sources.incremental[int] = dlt.sources.incremental("updated_at"),  # noqa: B008 - dlt's idiom
    ) -> Iterator[dict[str, int]]:
        yield {"id": 1, "changed": 5}  # no `updated_at`: the cursor path is missing

    pipeline = make_pipeline("engine_cursor", "engine_cursor")

    with pytest.raises(DeterministicError) as caught:
        run_pipeline(pipeline, orders())

    message = str(caught.value)
    assert "orders" in message and "IncrementalCursorPathMissing" in message
    assert "not retried" in message
    assert is_permanent(caught.value)
    assert not pipeline.has_pending_data


# -- dlt's private API, used in one module ---------------------------------------------------------


def test_dlt_private_api_repairs_a_package_left_extracted_and_normalised(
    frankfurter: FrankfurterServer,
) -> None:
    # A SIGKILL between normalize's two commit steps, recreated: the package was renamed into
    # load/normalized, but its extracted copy was not deleted yet.
    p = currencies.pipeline()
    p.extract(currencies_source())
    extracted = Path(p.working_dir) / "normalize" / "extracted"
    [package] = list(extracted.iterdir())
    kept = Path(shutil.copytree(package, extracted.parent / "kept"))
    p.normalize()
    kept.rename(package)

    assert dlt_private.discard_committed_extracts(p) == [package.name]
    assert not package.exists()
    assert p.list_normalized_load_packages() == [package.name]
    assert dlt_private.discard_committed_extracts(p) == []


def test_a_pending_full_refresh_package_is_recognised_extracted_or_normalised(
    frankfurter: FrankfurterServer,
) -> None:
    currencies.run()
    p = currencies.pipeline()
    p.extract(currencies_source())
    [plain] = p.list_extracted_load_packages()
    assert has_refresh_package(p, [plain]) is False
    p.normalize()
    p.load()
    p.extract(currencies_source(), refresh="drop_sources")
    [refresh] = p.list_extracted_load_packages()
    assert has_refresh_package(p, [refresh]) is True
    assert dlt_private.extracted_package_state(p, refresh)["dropped_tables"]
    p.normalize()
    assert p.list_normalized_load_packages() == [refresh]
    assert has_refresh_package(p, [refresh]) is True


# -- pending packages, progress and the report -----------------------------------------------------


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_the_report_counts_rows_per_load_and_in_the_table_and_progress_reaches_the_logger(
    frankfurter: FrankfurterServer, warehouse: Path
) -> None:
    logger = logging.getLogger("test_run_engine.progress")
    lines = Lines()
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)

    with report_to(logger, period_seconds=0.0):
        report = currencies.run()

    [load_id] = report.load_ids
    assert report.rows_per_load == {load_id: {"currencies": len(frankfurter.currencies)}}
    assert report.rows_in_table == {"currencies": len(frankfurter.currencies)}
    assert report.finished_load_ids == []
    assert report.duration_seconds > 0
    [row] = report.tables()
    assert (row.table, row.load_id, row.rows_loaded, row.rows_in_table) == (
        "currencies",
        load_id,
        len(frankfurter.currencies),
        len(frankfurter.currencies),
    )
    text = "\n".join(lines.lines)
    for step in ("Extract currencies", "Normalize currencies", "Load currencies"):
        assert step in text, text
    assert f"currencies: {len(frankfurter.currencies)} rows into duckdb" in text


def test_packages_an_earlier_try_left_are_loaded_first_and_reported(
    frankfurter: FrankfurterServer, warehouse: Path
) -> None:
    p = currencies.pipeline()
    p.extract(currencies_source())
    p.normalize()  # the earlier try died before its load
    [earlier] = p.list_normalized_load_packages()

    report = currencies.run()

    assert report.finished_load_ids == [earlier]
    assert report.all_load_ids == [earlier, *report.load_ids]
    assert report.rows_per_load[earlier] == {"currencies": len(frankfurter.currencies)}
    assert not currencies.pipeline().has_pending_data
    with duckdb.connect(str(warehouse), read_only=True) as con:
        loads = con.execute("select load_id from currencies._dlt_loads where status = 0").fetchall()
    assert {(earlier,), *((i,) for i in report.load_ids)} == set(loads)


def test_our_permanent_errors_are_permanent_through_any_wrapper() -> None:
    assert is_permanent(_wrapped(PermanentPipelineError("x")))


def test_a_stop_by_a_signal_is_no_failure_and_names_its_signal() -> None:
    # dlt raises SignalReceivedException (a TerminalException) for the SIGINT or SIGTERM it
    # intercepts while it normalises or loads: a stop, never a permanent failure.
    term = _wrapped(SignalReceivedException(signal.SIGTERM))
    assert is_permanent(term) is False
    assert stop_signal(term) == signal.SIGTERM
    assert stop_signal(_wrapped(KeyboardInterrupt())) == signal.SIGINT  # Ctrl-C elsewhere
    assert stop_signal(_wrapped(RunStopped("stopped", signal.SIGTERM))) == signal.SIGTERM
    assert stop_signal(_wrapped(SignalReceivedException(-1))) == 0  # dlt's "no signal known"
    assert signal_name(15) == "SIGTERM (signal 15)" and signal_name(0) == "a signal"
    for failure in (PermanentPipelineError("x"), RuntimeError("x"), TerminalException("x")):
        assert stop_signal(_wrapped(failure)) is None


def test_a_run_opens_the_duckdb_file_once(
    frankfurter: FrankfurterServer, warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 14 (per-run fixed cost): dlt opens the database for each client it makes - the table
    # check, the load, the staging emptying, the row counts - and each open of a real file reads
    # its catalogue, each close after writes checkpoints it (~40 ms of CPU each on 1M products).
    # The engine keeps it open for the run, so dlt's later opens join the open database.
    currencies.run()  # the first load creates the tables
    real_opens: list[str] = []
    connect = duckdb.connect

    def counting_connect(database: str = ":memory:", *args: object, **kwargs: object) -> object:
        if str(database) == str(warehouse):
            try:  # DuckDB refuses another configuration only while the file is open in this process
                probe = connect(str(database), config={"threads": 1})
            except duckdb.ConnectionException:
                pass  # joins the open database
            else:
                probe.close()
                real_opens.append(str(database))
        return connect(database, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(duckdb, "connect", counting_connect)

    report = currencies.run()

    assert report.rows_in_table == {"currencies": len(frankfurter.currencies)}
    assert real_opens == [str(warehouse)]
    monkeypatch.undo()
    with duckdb.connect(str(warehouse), read_only=True) as con:  # closed again after the run
        assert con.execute("select count(*) from currencies.currencies").fetchone() == (
            len(frankfurter.currencies),
        )


def test_every_client_of_a_run_shares_one_duckdb_connection(
    frankfurter: FrankfurterServer, warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 14 (per-run fixed cost): the destination's credentials are resolved once, before
    # extraction, and pinned: dlt then takes them as they are in every client it makes instead of
    # resolving them again (about 30 times per products run), and every client borrows a session
    # from their one connection pool instead of connecting to the database again.
    currencies.run()  # the first load creates the tables
    connects: list[str] = []
    connect = duckdb.connect

    def counting_connect(database: str = ":memory:", *args: object, **kwargs: object) -> object:
        if str(database) == str(warehouse):
            connects.append(str(database))
        return connect(database, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(duckdb, "connect", counting_connect)

    report = currencies.run()

    assert report.rows_in_table == {"currencies": len(frankfurter.currencies)}
    assert connects == [str(warehouse)]


class _CountingProvider(ConfigProvider):
    """A dlt configuration provider that holds nothing and counts the lookups of one key."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.asked = 0

    def get_value(
        self, key: str, hint: type[Any], pipeline_name: str | None, *sections: str
    ) -> tuple[None, str]:
        if key == self.key:
            self.asked += 1
        return None, key

    @property
    def supports_secrets(self) -> bool:
        return True

    @property
    def supports_sections(self) -> bool:
        return True

    @property
    def name(self) -> str:
        return "counting"


@contextmanager
def counting_lookups(key: str) -> Iterator[_CountingProvider]:
    provider = _CountingProvider(key)
    dlt.config.register_provider(provider)
    try:
        yield provider
    finally:
        Container()[PluggableRunContext].providers.providers.remove(provider)


def test_a_run_reads_the_destination_settings_once(frankfurter: FrankfurterServer, warehouse: Path) -> None:
    # Issue 14 (per-run fixed cost): dlt resolves the destination's configuration for every client it
    # makes and every time it asks for the capabilities - each setting looked up in every provider
    # under every section, about 40 times per products run. The engine resolves it once, before
    # extracting, and pins the values, so every later resolution takes them as they are.
    currencies.run()  # the first load creates the tables
    with counting_lookups("create_indexes") as once:  # a DuckDB setting nobody sets here
        check_destination(currencies.pipeline())
    with counting_lookups("create_indexes") as run:
        report = currencies.run()

    assert report.rows_in_table == {"currencies": len(frankfurter.currencies)}
    assert once.asked > 0
    assert run.asked == once.asked


def test_a_destination_failure_while_checking_for_dropped_tables_is_translated(
    frankfurter: FrankfurterServer, warehouse: Path
) -> None:
    # After a first run the engine asks the destination which tables were dropped before extracting;
    # that question went to dlt outside any step, so its error escaped untranslated (a raw traceback).
    currencies.run()
    for leftover in warehouse.parent.glob(f"{warehouse.name}.wal"):
        leftover.unlink()
    # A DuckDB header (it passes the file check) over a body DuckDB cannot read.
    warehouse.write_bytes(bytes(8) + b"DUCK" + b"\xff" * 4096)

    with pytest.raises(PipelineError) as caught:
        currencies.run()

    message = str(caught.value)
    assert "Pipeline 'currencies'" in message
    assert "checking the destination for dropped tables" in message, message
    assert "Corrupt database file" in message, message  # DuckDB's reason, in one line
