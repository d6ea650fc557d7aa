"""The Snowpipe DDL in snowflake/exchange_rates/: parses as Snowflake SQL, fits the files dlt writes,
and runs against fakesnow as far as fakesnow goes.

What fakesnow 0.12.1 cannot run, measured here (each pinned by a test, so an upgrade that changes it
shows up):
- `CREATE PIPE ...` is a parser error (fakesnow has no pipes);
- in the pipe's COPY INTO: the `PATTERN` copy option ("Unknown copy parameter") and the
  `METADATA$FILENAME` column (a DuckDB binder error);
- an `s3://` stage cannot be read (DuckDB's httpfs extension is not installed and cannot be
  downloaded here), so the COPY test points the stage at a local mirror of the bucket.
The schema, file format, stage (`STORAGE_INTEGRATION` accepted, not checked) and table run, and run
again without error (idempotent).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import snowflake.connector
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from pipelines import exchange_rates as exchange_rates_pipeline
from sandbox.aws import AwsSandbox
from sandbox.frankfurter import FrankfurterServer
from tests.snowflake.snowpipe_emulator import (
    RATES_START,
    SQL_DIR,
    PipeDefinition,
    expected_history,
    pipe_copy,
)
from utils.snowflake_sql import SqlApplyError, Statement, apply, load_statements

pytestmark = pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result")

PARQUET_COLUMNS = {"date", "base", "quote", "rate", "_dlt_load_id", "_dlt_id"}


@pytest.fixture
def statements() -> list[Statement]:
    return load_statements([SQL_DIR])


@pytest.fixture
def fake_snowflake() -> Iterator[Any]:
    import fakesnow

    with fakesnow.patch():
        connection = snowflake.connector.connect(database="RAW", schema="PUBLIC")
        yield connection
        connection.close()


def parse(statement: Statement) -> exp.Expr:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sqlglot.parse_one(statement.text, read="snowflake", error_level=ErrorLevel.RAISE)


def test_every_statement_parses_in_the_snowflake_dialect(statements: list[Statement]) -> None:
    parsed = [parse(s) for s in statements]
    kinds = [e.args.get("kind") if isinstance(e, exp.Create) else type(e).__name__ for e in parsed]
    # sqlglot has no CREATE PIPE: it keeps that statement as an opaque command, so its COPY INTO
    # body is parsed on its own below.
    assert kinds == ["SCHEMA", "FILE FORMAT", "STAGE", "TABLE", "Command"]
    assert statements[-1].text.startswith("CREATE PIPE IF NOT EXISTS EXCHANGE_RATES.EXCHANGE_RATES_PIPE")
    copy = pipe_copy()
    assert isinstance(copy, exp.Copy)
    assert copy.this.this.sql("snowflake") == "EXCHANGE_RATES.EXCHANGE_RATES"


def test_ddl_is_idempotent_and_never_replaces(statements: list[Statement]) -> None:
    for statement in statements:
        assert "OR REPLACE" not in statement.text.upper(), statement.location
        assert "IF NOT EXISTS" in statement.text.upper(), statement.location
        expression = parse(statement)
        if isinstance(expression, exp.Create):
            assert expression.args.get("exists") is True and not expression.args.get("replace")


def test_pipe_auto_ingests_from_the_stage_with_the_file_format(statements: list[Statement]) -> None:
    pipe = statements[-1].text
    assert re.search(r"\bAUTO_INGEST\s*=\s*TRUE\b", pipe)
    copy = pipe_copy()
    source = copy.args["files"][0].this
    assert source.args["from_"].this.sql("snowflake") == "@EXCHANGE_RATES.LANDING"
    params = {p.this.name.upper(): p for p in copy.args["params"]}
    assert "EXCHANGE_RATES.DLT_PARQUET" in params["FILE_FORMAT"].sql("snowflake")
    stage = parse(statements[2])
    assert stage.this.sql("snowflake") == "EXCHANGE_RATES.LANDING"
    assert "FILE_FORMAT=(FORMAT_NAME='EXCHANGE_RATES.DLT_PARQUET')" in stage.sql("snowflake").replace(" ", "")
    assert "STORAGE_INTEGRATION=EXCHANGE_RATES_LANDING" in stage.sql("snowflake").replace(" ", "")
    assert parse(statements[1]).this.sql("snowflake") == "EXCHANGE_RATES.DLT_PARQUET"


def test_pipe_maps_every_parquet_column_into_the_table(statements: list[Statement]) -> None:
    copy = pipe_copy()
    target_columns = [c.name for c in copy.this.expressions]
    select = copy.args["files"][0].this
    keys = [e.find(exp.JSONPathKey) for e in select.expressions]
    read = {k.this for k in keys if k is not None}
    assert read == PARQUET_COLUMNS  # what dlt writes for the exchange_rates table
    casts = {k.this: e.to.sql("snowflake") for e, k in zip(select.expressions, keys, strict=True) if k}
    assert casts["date"] == "DATE" and casts["rate"] in ("FLOAT", "DOUBLE")
    assert "METADATA$FILENAME" in select.expressions[-1].sql("snowflake")
    table = parse(statements[3])
    table_columns = [c.name for c in table.this.expressions]
    assert target_columns == [c for c in table_columns if c != "LOADED_AT"]
    assert [c.upper() for c in ("date", "base", "quote", "rate")] == target_columns[:4]


@pytest.mark.parametrize(
    ("path", "ingested"),
    [
        ("exchange_rates/2026/03/13/1773400000.123456.a1b2c3d4e5.parquet", True),
        ("_dlt_loads/exchange_rates__1773400000.123456.jsonl", False),
        ("_dlt_loads/exchange_rates__1773400000.123456.jsonl.gz", False),
        ("_dlt_pipeline_state/exchange_rates__1773400000.123456__abc.jsonl.gz", False),
        ("_dlt_version/exchange_rates__1773400000.123456__abc.jsonl", False),
        ("init", False),
        ("exchange_rates/init", False),
        ("exchange_rates/2026/03/13/1773400000.123456.a1b2c3d4e5.parquet.gz", False),
        ("exchange_rates/2026/03/13/1773400000.123456.a1b2c3d4e5.jsonl.gz", False),
        ("other_exchange_rates/2026/03/13/1773400000.123456.a1b2c3d4e5.parquet", False),
        ("exchange_rates_staging/2026/03/13/1773400000.123456.a1b2c3d4e5.parquet", False),
    ],
)
def test_pattern_admits_the_table_data_files_only(path: str, ingested: bool) -> None:
    pipe = PipeDefinition.from_sql()
    assert (pipe.bucket, pipe.prefix) == ("exchange-rates-landing", "exchange_rates/")
    assert bool(pipe.pattern.fullmatch(path)) is ingested
    # A manual COPY (or ALTER PIPE ... REFRESH) matches the whole location, prefix included.
    assert bool(pipe.pattern.fullmatch(f"s3://exchange-rates-landing/exchange_rates/{path}")) is ingested


def test_stage_points_at_the_pipelines_dataset_folder() -> None:
    pipe = PipeDefinition.from_sql()
    assert pipe.prefix == f"{exchange_rates_pipeline.DATASET_NAME}/"
    assert exchange_rates_pipeline.LAYOUT.startswith("{table_name}/{YYYY}/{MM}/{DD}/")


def test_fakesnow_runs_all_but_the_pipe_and_reruns_them(
    statements: list[Statement], fake_snowflake: Any
) -> None:
    failures = {}
    for _ in range(2):  # a second pass proves the DDL can be re-applied
        for statement in statements:
            try:
                apply([statement], fake_snowflake)
            except SqlApplyError as exc:
                failures[statement.path.name] = str(exc)
    assert set(failures) == {"05_pipe.sql"}
    assert 'syntax error at or near "PIPE"' in failures["05_pipe.sql"]
    assert "05_pipe.sql:8" in failures["05_pipe.sql"]

    cursor = fake_snowflake.cursor()
    cursor.execute("show stages in schema EXCHANGE_RATES")
    [stage] = cursor.fetchall()
    assert stage[1] == "LANDING" and stage[4] == "s3://exchange-rates-landing/exchange_rates/"
    cursor.execute("describe table EXCHANGE_RATES.EXCHANGE_RATES")
    columns = {row[0]: row[1] for row in cursor.fetchall()}
    assert columns["DATE"] == "DATE" and columns["RATE"] == "FLOAT" and columns["QUOTE"] == "VARCHAR(3)"


def test_fakesnow_rejects_the_copy_options_it_does_not_know(
    statements: list[Statement], fake_snowflake: Any
) -> None:
    apply(statements[:4], fake_snowflake)
    copy_sql = pipe_copy().sql("snowflake")
    cursor = fake_snowflake.cursor()
    with pytest.raises(ValueError, match="Unknown copy parameter: PATTERN"):
        cursor.execute(copy_sql)


def test_pipe_copy_loads_dlt_files_through_fakesnow_once_per_file(
    statements: list[Statement],
    fake_snowflake: Any,
    rates_api: FrankfurterServer,
    landing_bucket: AwsSandbox,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # Real files from the pipeline, mirrored to disk: fakesnow cannot read s3:// here.
    monkeypatch.delenv("DLT__DESTINATION")
    monkeypatch.setenv("NORMALIZE__DATA_WRITER__FILE_MAX_ITEMS", "1000")
    exchange_rates_pipeline.run()
    pipe = PipeDefinition.from_sql()
    s3 = landing_bucket.boto3_client("s3")
    files = []
    for key in landing_bucket.list_objects(prefix=pipe.prefix):
        path = key.removeprefix(pipe.prefix)
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(s3.get_object(Bucket=landing_bucket.bucket, Key=key)["Body"].read())
        if pipe.pattern.fullmatch(path):
            files.append(path)
    assert len(files) > 1

    local = [
        s.text.replace(f"s3://{pipe.bucket}/{pipe.prefix}", f"{tmp_path.as_uri()}/") for s in statements[:4]
    ]
    cursor = fake_snowflake.cursor()
    for text in local:
        cursor.execute(text)
    # The pipe's own COPY INTO, with the two parts fakesnow lacks swapped for what it can run:
    # the files PATTERN selects, and a constant file name.
    copy = pipe_copy()
    copy.set("params", [p for p in copy.args["params"] if p.this.name.upper() != "PATTERN"])
    files_option = " FILES = (" + ", ".join(f"'{f}'" for f in files) + ")"
    with pytest.raises(snowflake.connector.ProgrammingError, match=r'column "METADATA\$FILENAME" not found'):
        cursor.execute(copy.sql("snowflake") + files_option)
    copy_sql = copy.sql("snowflake").replace("METADATA$FILENAME", "'n/a'") + files_option

    cursor.execute(copy_sql)
    assert {row[1] for row in cursor.fetchall()} == {"LOADED"}
    cursor.execute(
        "select date, base, quote, rate from EXCHANGE_RATES.EXCHANGE_RATES order by date, base, quote"
    )
    assert cursor.fetchall() == expected_history(rates_api, RATES_START)

    # Like Snowpipe, COPY remembers the files it loaded and skips them the next time.
    cursor.execute(copy_sql)
    assert {row[1] for row in cursor.fetchall()} == {"LOAD_SKIPPED"}
    cursor.execute("select count(*) from EXCHANGE_RATES.EXCHANGE_RATES")
    assert cursor.fetchone() == (len(expected_history(rates_api, RATES_START)),)
