"""Exchange rates pipeline: the rates history as Parquet files in the S3 landing bucket, for Snowpipe.

Production loads through dlt's filesystem destination into `destination.filesystem.bucket_url`
(`s3://exchange-rates-landing`); Snowpipe ingests the data files from there (see
`snowflake/exchange_rates/`). `DLT__DESTINATION=duckdb` loads the same rows straight into the local
DuckDB file instead.

Layout in the bucket (the pipe's stage and PATTERN depend on it - change them together):

    {dataset}/exchange_rates/{YYYY}/{MM}/{DD}/{load_id}.{file_id}.parquet

The date is the load package's creation date (UTC), not the rates' date, and `load_id` and
`file_id` are fixed when a package is normalised. So a package that is retried after a crash or
failure rewrites exactly the same object keys with the same bytes, and Snowpipe - which skips a path
it has already loaded - ingests every row once. dlt's bookkeeping (`_dlt_loads/`,
`_dlt_pipeline_state/`, `_dlt_version/`, `init` markers, gzip JSONL) lands beside the table folder,
never inside the pattern.

That holds while the pipeline's working directory (`DLT_DATA_DIR`), which keeps the pending package,
survives the crash. If it does not (a worker container that is gone), the next run restores the
cursor from the bucket's `_dlt_pipeline_state/` - written only when a load completes - and would
extract the crashed load's rows again under a new load id. So before extracting, `run()` looks for
data files of loads newer than the last completed one that no local package will finish, and leaves
the rows they hold out of the new load: Snowpipe has them already.

Two runs must never overlap (both would extract the same days): the deployment in prefect.yaml has
`concurrency_limit: 1`.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, cast

import dlt
import pyarrow.parquet as pq
from dlt.common.destination.exceptions import DestinationUndefinedEntity
from dlt.destinations.impl.filesystem.filesystem import FilesystemClient

from sources.exchange_rates import exchange_rates_source
from sources.exchange_rates.settings import ROW_KEY, TABLE_NAME
from utils import landing
from utils.destinations import check_destination, make_pipeline, selected_destination
from utils.errors import ConfigurationError
from utils.load_summary import LoadSummary
from utils.run_engine import run_pipeline

logger = logging.getLogger(__name__)

RowKey = tuple[dt.date, str, str]

PIPELINE_NAME = "exchange_rates"
# The top folder in the bucket; a schema (EXCHANGE_RATES) when loading into a SQL destination.
DATASET_NAME = "exchange_rates"
# The S3 landing bucket, through dlt's filesystem destination.
PRODUCTION_DESTINATION = "filesystem"
# Placeholders are dlt's: the date ones come from the load package's creation time.
LAYOUT = "{table_name}/{YYYY}/{MM}/{DD}/{load_id}.{file_id}.{ext}"
LOADER_FILE_FORMAT = "parquet"


def pipeline() -> dlt.Pipeline:
    """Build the exchange_rates pipeline (the S3 landing bucket, or `DLT__DESTINATION`)."""
    options: dict[str, Any] = {}
    if selected_destination(PRODUCTION_DESTINATION) == "filesystem":
        options["layout"] = LAYOUT
    return make_pipeline(
        PIPELINE_NAME, DATASET_NAME, production_destination=PRODUCTION_DESTINATION, **options
    )


def run(start_date: dt.date | None = None, end_date: dt.date | None = None) -> LoadSummary:
    """Extract the days after the last loaded one (all history on the first run) and append them.

    Given `start_date` and `end_date`, backfill instead: load the days of that range (inclusive)
    that the destination does not hold yet - history before the configured `start_date`, or a gap.
    The cursor stays where it is (dlt keeps no state for an incremental with an end value), and rows
    already loaded are left out, so a backfill never appends a row twice and can simply be run again.

    Args:
        start_date: First day of the backfill.
        end_date: Last day of the backfill.

    Returns:
        The load report (rows per table and load package, table sizes, duration).

    Raises:
        ConfigurationError: Only one of the dates is given, or the range is empty.
    """
    p = pipeline()
    source = exchange_rates_source()
    resource = source.resources[TABLE_NAME]
    backfill = _backfill_range(start_date, end_date)
    if backfill is not None:
        first, last = backfill
        # The range end is open in dlt; the day after `last` makes `last` itself part of it.
        resource.apply_hints(
            incremental=dlt.sources.incremental(
                "date", initial_value=first, end_value=last + dt.timedelta(days=1), primary_key=ROW_KEY
            )
        )
    if selected_destination(PRODUCTION_DESTINATION) == "filesystem":
        # Missing bucket settings fail here, with the keys to set, before anything is listed.
        check_destination(p)
        landed = rows_of_unfinished_loads(p)
        if landed:
            logger.warning(
                "exchange_rates: %d rows are already in the bucket from a load that never completed "
                "and whose package is gone; they are left out of this load.",
                len(landed),
            )
            resource.add_filter(lambda row: _row_key(row) not in landed)
    if backfill is not None:
        check_destination(p)
        present = loaded_keys(p, *backfill)
        if present:
            logger.info("exchange_rates: backfill skips %d rows the destination already holds", len(present))
            resource.add_filter(lambda row: _row_key(row) not in present)
    return run_pipeline(p, source, loader_file_format=LOADER_FILE_FORMAT)


def _backfill_range(start_date: dt.date | None, end_date: dt.date | None) -> tuple[dt.date, dt.date] | None:
    if start_date is None and end_date is None:
        return None
    if start_date is None or end_date is None:
        raise ConfigurationError(
            "exchange_rates: a backfill needs both start_date and end_date (YYYY-MM-DD, inclusive); "
            f"got start_date={start_date}, end_date={end_date}."
        )
    if end_date < start_date:
        raise ConfigurationError(
            f"exchange_rates: backfill end_date {end_date} is before start_date {start_date}."
        )
    return start_date, end_date


def loaded_keys(p: dlt.Pipeline, first: dt.date, last: dt.date) -> set[RowKey]:
    """Keys of the rows from `first` to `last` (inclusive) that the destination already holds.

    Read from the table in a SQL destination, or from every data file in the bucket (completed or
    not: Snowpipe may have ingested either) for the filesystem destination.

    Args:
        p: The pipeline.
        first: First day.
        last: Last day.

    Returns:
        (date, base, quote) of every such row.
    """
    client = p.destination_client()
    if isinstance(client, FilesystemClient):
        keys: set[RowKey] = set()
        for path in _files(client, TABLE_NAME):
            if not path.endswith(".parquet"):
                continue
            with client.fs_client.open(path, "rb") as file:
                table = pq.read_table(
                    file, columns=list(ROW_KEY), filters=[("date", ">=", first), ("date", "<=", last)]
                )
            keys.update(zip(*(table.column(c).to_pylist() for c in ROW_KEY), strict=True))
        return keys
    with p.sql_client() as sql:
        if not sql.has_dataset():
            return set()
        columns = ", ".join(sql.escape_column_name(c) for c in ROW_KEY)
        query = (
            f"SELECT {columns} FROM {sql.make_qualified_table_name(TABLE_NAME)} "  # noqa: S608 - names from dlt
            f"WHERE {sql.escape_column_name('date')} BETWEEN %s AND %s"
        )
        try:
            rows = sql.execute_sql(query, first, last) or []
        except DestinationUndefinedEntity:  # the table does not exist yet
            return set()
    return {(row[0], row[1], row[2]) for row in rows}


def rows_of_unfinished_loads(p: dlt.Pipeline) -> set[RowKey]:
    """Keys of the rows in data files of loads that never completed and that no local package owns.

    The rule is shared with every Snowpipe pipeline (`utils.landing`): a load completes when dlt
    writes its `_dlt_loads/` marker, and data files of a newer load without one, whose package is not
    in the working directory, were uploaded by a crashed run that no run will finish.

    Args:
        p: The pipeline, loading into the filesystem destination.

    Returns:
        (date, base, quote) of every row in such files; empty in the normal case.
    """
    return cast(set[RowKey], landing.rows_of_unfinished_loads(p, TABLE_NAME, ROW_KEY, _row_key))


def _files(client: FilesystemClient, table_name: str) -> list[str]:
    try:
        return list(client.list_table_files(table_name))
    except (DestinationUndefinedEntity, FileNotFoundError):
        return []


def _row_key(row: dict[str, Any]) -> RowKey:
    return (row["date"], row["base"], row["quote"])
