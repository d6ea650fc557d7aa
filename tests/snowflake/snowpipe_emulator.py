"""A test-side Snowpipe: loads the landing bucket's data files into DuckDB, each path at most once.

Snowpipe is at-least-once per file, but remembers the paths it has loaded and skips them (a file
rewritten under a known path is ignored, even if its content changed). `SnowpipeEmulator.ingest()`
does the same against the moto bucket, with the stage URL and PATTERN read from the repository's
own DDL (`snowflake/exchange_rates/`), so the emulation admits exactly what the real pipe would.
It also remembers each path's ETag, so a test can tell a harmless rewrite (same bytes) from one that
Snowpipe would silently ignore (different bytes).
"""

from __future__ import annotations

import datetime as dt
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

from sandbox.aws import AwsSandbox
from sandbox.frankfurter import FrankfurterServer

ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = ROOT / "snowflake" / "exchange_rates"

# The rates API in tests publishes through this Friday; backfills start a few months earlier.
RATES_TODAY = dt.date(2026, 3, 13)
RATES_START = dt.date(2025, 12, 1)


@dataclass(frozen=True)
class PipeDefinition:
    """What the pipe reads: the stage URL's bucket and prefix, and the PATTERN."""

    bucket: str
    prefix: str
    pattern: re.Pattern[str]

    @classmethod
    def from_sql(cls, folder: Path = SQL_DIR) -> PipeDefinition:
        """Read the stage URL from the CREATE STAGE and the PATTERN from the pipe's COPY INTO."""
        stage_sql = next(p for p in sorted(folder.glob("*.sql")) if "CREATE STAGE" in p.read_text())
        url = re.search(r"URL\s*=\s*'([^']+)'", stage_sql.read_text())
        assert url is not None, stage_sql
        match = re.fullmatch(r"s3://([^/]+)/(.*)", url[1])
        assert match is not None, url[1]
        return cls(bucket=match[1], prefix=match[2], pattern=re.compile(pipe_copy(folder).args["pattern"]))


def pipe_copy(folder: Path = SQL_DIR) -> exp.Copy:
    """The pipe's COPY INTO statement, parsed (sqlglot cannot parse CREATE PIPE around it)."""
    pipe_sql = next(p for p in sorted(folder.glob("*.sql")) if "CREATE PIPE" in p.read_text()).read_text()
    body = pipe_sql[re.search(r"\bAS\s+COPY\s+INTO\b", pipe_sql).start() :]  # type: ignore[union-attr]
    body = body[body.index("COPY") :].rstrip().rstrip(";")
    copy = sqlglot.parse_one(body, read="snowflake")
    assert isinstance(copy, exp.Copy)
    params = {p.this.name.upper(): p for p in copy.args.get("params", [])}
    copy.set("pattern", params["PATTERN"].expression.name)
    return copy


@dataclass
class SnowpipeEmulator:
    """Loads matching objects of the landing bucket into an in-memory DuckDB table, once per path."""

    aws: AwsSandbox
    pipe: PipeDefinition = field(default_factory=PipeDefinition.from_sql)
    loaded: dict[str, str] = field(default_factory=dict)  # path relative to the stage -> ETag
    rewritten: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (old, new) ETag
    ignored: list[str] = field(default_factory=list)  # objects under the stage the PATTERN refused

    def __post_init__(self) -> None:
        self.con = duckdb.connect()
        self.con.execute(
            "create table exchange_rates (date date not null, base varchar not null, "
            "quote varchar not null, rate double not null, _dlt_load_id varchar not null, "
            "file_name varchar not null)"
        )

    def ingest(self) -> list[str]:
        """Load every new matching object; return the paths loaded by this call."""
        s3 = self.aws.boto3_client("s3")
        new: list[str] = []
        ignored: list[str] = []
        paginator = s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.pipe.bucket, Prefix=self.pipe.prefix):
            for item in page.get("Contents", []):
                path = str(item["Key"])[len(self.pipe.prefix) :]
                etag = str(item["ETag"])
                if not self.pipe.pattern.fullmatch(path):
                    ignored.append(path)
                    continue
                if path in self.loaded:
                    if self.loaded[path] != etag:
                        self.rewritten[path] = (self.loaded[path], etag)
                    continue  # Snowpipe skips a path it has loaded
                body = s3.get_object(Bucket=self.pipe.bucket, Key=item["Key"])["Body"].read()
                table = pq.read_table(io.BytesIO(body))
                self.con.register("staged", table)
                self.con.execute(
                    "insert into exchange_rates select date, base, quote, rate, _dlt_load_id, ? from staged",
                    [path],
                )
                self.con.unregister("staged")
                self.loaded[path] = etag
                new.append(path)
        self.ignored = ignored
        return new

    def rows(self) -> list[tuple[dt.date, str, str, float]]:
        """Every loaded (date, base, quote, rate), sorted."""
        return [
            (d, b, q, r)
            for d, b, q, r in self.con.execute(
                "select date, base, quote, rate from exchange_rates order by date, base, quote, rate"
            ).fetchall()
        ]

    def duplicates(self) -> list[tuple[Any, ...]]:
        """(date, base, quote, copies, files) for every key loaded more than once."""
        return self.con.execute(
            "select date, base, quote, count(*), list(file_name) from exchange_rates "
            "group by all having count(*) > 1 order by all"
        ).fetchall()


def expected_history(
    server: FrankfurterServer, start: dt.date, end: dt.date | None = None
) -> list[tuple[dt.date, str, str, float]]:
    """The EUR rates the server publishes from `start` to `end` (default its today), from its own model.

    Computed with `FrankfurterServer.rate()`, not over HTTP, so it is an oracle independent of the
    code under test; overrides (`republish`, `corrupt`, `withhold`) are ignored.
    """
    last = end or server.today
    return sorted(
        (day, "EUR", code, rate)
        for day in server.working_days(start, last)
        for code in server.coverage
        if (rate := server.rate(day, code)) is not None
    )
