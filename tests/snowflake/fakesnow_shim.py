"""fakesnow, bridged so that dlt 1.31's Snowflake destination runs on it, with every statement recorded.

fakesnow 0.12.1 emulates Snowflake on DuckDB behind `snowflake.connector.connect`. dlt's Snowflake
destination breaks on it in four places (TRAPS.md); `SnowflakeEmulator` bridges those and nothing
else, so the pipelines run unchanged (their own `run()`, the production destination settings):

(a) dlt connects with its dataset as `schema`; fakesnow would create that schema, quoted, on connect.
    fakesnow is started with `create_schema_on_connect=False`, so dlt's own `CREATE SCHEMA` runs.
(b) dlt sends several statements in one `execute` (`num_statements=0`); fakesnow parses one. The
    shim splits the request with sqlglot's Snowflake tokenizer (`utils.snowflake_sql.split_statements`)
    and runs the statements in order on the same session, as Snowflake does.
(c) `PUT 'file://...' '@"SCHEMA"."%TABLE"/"<load_id>"'`: fakesnow cannot read a quoted stage target.
    The shim passes the same stage and folder unquoted (dlt's identifiers are upper case already,
    so they name the same objects) and drops `OVERWRITE`, which fakesnow does not know.
(d) `COPY INTO ... FILE_FORMAT = (TYPE = 'JSON', ...)`: fakesnow's COPY reads CSV and Parquet only
    and refuses dlt's Parquet options and the quoted `MATCH_BY_COLUMN_NAME='CASE_INSENSITIVE'`. For a
    JSONL file the shim writes a Parquet copy (DuckDB's `read_json`) and PUTs that instead; the COPY
    gets `FILE_FORMAT = (TYPE = 'PARQUET')` and the unquoted `MATCH_BY_COLUMN_NAME`, and fakesnow's
    own COPY then loads the staged file, matching columns by name.

What the bridge changes is therefore exactly: the statement splitting, the quoting of the stage
path, the COPY's file format options, and JSONL read through Parquet (so types are DuckDB's JSON
inference, then cast by fakesnow's COPY into dlt's column types). Everything else - CREATE SCHEMA
and TABLE, ALTER, TRUNCATE, DELETE, INSERT ... SELECT, MERGE, the transactions - reaches fakesnow
as dlt wrote it.

`statements` records what dlt sent, before any bridging, per connection ("session"), including
the connector's transaction calls as the SQL the real connector sends for them:
`autocommit(False)` is `ALTER SESSION SET autocommit=False`, `commit()` is `COMMIT`.
`connect_calls` holds the keyword arguments `snowflake.connector.connect` received.
"""

from __future__ import annotations

import gzip
import itertools
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import fakesnow
import snowflake.connector

from utils.snowflake_sql import split_statements

# What the real connector executes for `autocommit(mode)`, `commit()` and `rollback()`.
AUTOCOMMIT_OFF = "ALTER SESSION SET autocommit=False"
AUTOCOMMIT_ON = "ALTER SESSION SET autocommit=True"
COMMIT = "COMMIT"
ROLLBACK = "ROLLBACK"

_PUT = re.compile(r"^\s*PUT\s+'(?P<file>file://[^']+)'\s+'(?P<stage>@[^']+)'(?P<options>.*)$", re.I | re.S)
_COPY_FROM = re.compile(r"FROM\s+'(?P<source>@[^']+)'", re.I)
_FILE_FORMAT = re.compile(r"FILE_FORMAT\s*=\s*\((?P<options>[^)]*)\)", re.I)
_MATCH_BY_NAME = re.compile(r"MATCH_BY_COLUMN_NAME\s*=\s*'(?P<mode>\w+)'", re.I)


@dataclass(frozen=True)
class Sent:
    """One request dlt sent on one connection."""

    session: int
    sql: str


@dataclass
class SnowflakeEmulator:
    """fakesnow patched in for `snowflake.connector.connect`, with dlt's four breakages bridged.

    Use `with emulator.running(): ...`; everything loaded lives in fakesnow's in-memory DuckDB
    until the block ends.

    Attributes:
        sent: Every request dlt sent, in order, with the connection it came on.
        connect_calls: Keyword arguments of every `snowflake.connector.connect` call.
    """

    sent: list[Sent] = field(default_factory=list)
    connect_calls: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sessions: Iterator[int] = field(default_factory=itertools.count)
    _fake_connect: Callable[..., Any] | None = None
    _work_dir: Path | None = None

    @contextmanager
    def running(self) -> Iterator[SnowflakeEmulator]:
        """Patch the connector for the duration of the block."""
        with tempfile.TemporaryDirectory(prefix="fakesnow-shim-") as work_dir:
            self._work_dir = Path(work_dir)
            with fakesnow.patch(create_schema_on_connect=False):  # (a)
                mock = snowflake.connector.connect
                self._fake_connect = mock.side_effect

                def connect(*args: Any, **kwargs: Any) -> BridgedConnection:
                    with self._lock:
                        self.connect_calls.append(dict(kwargs))
                        session = next(self._sessions)
                    assert self._fake_connect is not None
                    return BridgedConnection(self._fake_connect(*args, **kwargs), self, session)

                mock.side_effect = connect
                try:
                    yield self
                finally:
                    self._fake_connect = None

    # -- reading what happened ------------------------------------------------------------------

    def record(self, session: int, sql: str) -> None:
        with self._lock:
            self.sent.append(Sent(session, sql))

    def statements(self) -> list[str]:
        """Every statement dlt sent, multi-statement requests split, in order."""
        return [text for sent in self.sent for _, text in split_statements(sent.sql)]

    def transactions(self) -> list[list[str]]:
        """The statements of each transaction, per session: from autocommit off to COMMIT."""
        open_: dict[int, list[str]] = {}
        done: list[list[str]] = []
        for sent in self.sent:
            if sent.sql == AUTOCOMMIT_OFF:
                open_[sent.session] = []
            elif sent.sql in (COMMIT, ROLLBACK):
                statements = open_.pop(sent.session, None)
                if statements is not None and sent.sql == COMMIT:
                    done.append(statements)
            elif sent.session in open_:
                open_[sent.session] += [text for _, text in split_statements(sent.sql)]
        return done

    def query(self, sql: str, database: str = "RAW") -> list[tuple[Any, ...]]:
        """Run `sql` on fakesnow directly (not recorded) and return every row, for assertions."""
        assert self._fake_connect is not None, "use inside running()"
        connection = self._fake_connect(database=database)
        try:
            cursor = connection.cursor()
            cursor.execute(sql)
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            connection.close()

    # -- bridges (c) and (d) --------------------------------------------------------------------

    def bridge(self, sql: str) -> str:
        put = _PUT.match(sql)
        if put:
            return self._bridge_put(put)
        if sql.lstrip().upper().startswith("COPY INTO"):
            return self._bridge_copy(sql)
        return sql

    def _bridge_put(self, put: re.Match[str]) -> str:
        local = Path(put["file"].removeprefix("file://"))
        if ".jsonl" in local.name:
            local = self._jsonl_as_parquet(local)
        options = re.sub(r"OVERWRITE\s*=\s*TRUE\s*,?", "", put["options"], flags=re.I)
        return f"PUT 'file://{local}' {_unquote(put['stage'])} {options.strip()}"

    def _bridge_copy(self, sql: str) -> str:
        source = _COPY_FROM.search(sql)
        fmt = _FILE_FORMAT.search(sql)
        assert source and fmt, f"not a COPY from a stage with a FILE_FORMAT: {sql}"
        stage_path = _unquote(source["source"])
        if "'JSON'" in fmt["options"].upper():
            stage_path = re.sub(r"\.jsonl(\.gz)?$", ".parquet", stage_path)
        sql = sql[: source.start()] + f"FROM {stage_path}" + sql[source.end() :]
        sql = _FILE_FORMAT.sub("FILE_FORMAT = (TYPE = 'PARQUET')", sql)
        return _MATCH_BY_NAME.sub(lambda m: f"MATCH_BY_COLUMN_NAME = {m['mode']}", sql)

    def _jsonl_as_parquet(self, path: Path) -> Path:
        assert self._work_dir is not None
        stem = path.name.split(".jsonl")[0]
        raw = path.read_bytes()
        source = self._work_dir / f"{stem}.jsonl"
        source.write_bytes(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
        target = self._work_dir / f"{stem}.parquet"
        with duckdb.connect() as con:
            con.execute(
                f"COPY (SELECT * FROM read_json('{source}', format = 'newline_delimited')) "
                f"TO '{target}' (FORMAT parquet)"
            )
        return target


def _unquote(stage: str) -> str:
    """`@"CURRENCIES"."%CURRENCIES"/"123.4"/f.parquet` -> `@CURRENCIES.%CURRENCIES/123.4/f.parquet`."""
    return stage.replace('"', "")


class BridgedConnection:
    """A fakesnow connection that records transaction calls and hands out bridged cursors."""

    def __init__(self, inner: Any, emulator: SnowflakeEmulator, session: int) -> None:
        self._inner = inner
        self._emulator = emulator
        self._session = session

    def cursor(self, *args: Any, **kwargs: Any) -> BridgedCursor:
        return BridgedCursor(self._inner.cursor(*args, **kwargs), self._emulator, self._session)

    def autocommit(self, mode: bool) -> None:
        self._emulator.record(self._session, AUTOCOMMIT_ON if mode else AUTOCOMMIT_OFF)
        self._inner.autocommit(mode)

    def commit(self) -> None:
        self._emulator.record(self._session, COMMIT)
        self._inner.commit()

    def rollback(self) -> None:
        self._emulator.record(self._session, ROLLBACK)
        self._inner.rollback()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class BridgedCursor:
    """A fakesnow cursor: records the request, applies bridges (b)-(d), runs it in fakesnow."""

    def __init__(self, inner: Any, emulator: SnowflakeEmulator, session: int) -> None:
        self._inner = inner
        self._emulator = emulator
        self._session = session

    def execute(self, command: str, params: Any = None, *args: Any, **kwargs: Any) -> BridgedCursor:
        self._emulator.record(self._session, command)
        statements = [text for _, text in split_statements(command)]
        if len(statements) <= 1:
            # `num_statements` (the real connector's multi-statement switch) is ignored by fakesnow.
            self._inner.execute(self._emulator.bridge(command), params, *args, **kwargs)
            return self
        # (b) one request, several statements: run them in order on this session.
        assert not params, "a multi-statement request with bind parameters is not bridged"
        for statement in statements:
            self._inner.execute(self._emulator.bridge(statement))
        return self

    def __enter__(self) -> BridgedCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
