"""Benchmark: the exchange_rates full-history backfill into the (moto) S3 landing bucket.

    uv run python bench/exchange_rates.py [--start-date 1999-01-04] [--chunk-days 365] [--duckdb]

Starts the sandbox's Frankfurter API and moto S3 on loopback, runs the pipeline once from the start
date (a fresh dlt working directory, so it is a first run), then once more (an incremental run with
nothing new), and prints wall time, HTTP requests, rows, and the files and bytes in the bucket.
With --duckdb it also times the same backfill straight into a DuckDB file. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from sandbox.aws import AwsSandbox
from sandbox.frankfurter import FrankfurterServer
from utils.load_summary import LoadSummary


def timed_run(api: FrankfurterServer) -> tuple[float, int, LoadSummary, dict[str, float]]:
    from pipelines.exchange_rates import pipeline, run

    api.reset_requests()
    started = time.perf_counter()
    summary = run()
    wall = time.perf_counter() - started
    trace = pipeline().last_trace
    steps = {step.step: (step.finished_at - step.started_at).total_seconds() for step in trace.steps}
    return wall, api.request_count("/v1/"), summary, steps


def bucket_figures(aws: AwsSandbox) -> tuple[int, int, int, int]:
    """(data files, data bytes, other objects, other bytes) in the landing bucket."""
    s3 = aws.boto3_client("s3")
    data_files = data_bytes = other_files = other_bytes = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=aws.bucket):
        for item in page.get("Contents", []):
            if item["Key"].startswith("exchange_rates/exchange_rates/") and item["Key"].endswith(".parquet"):
                data_files += 1
                data_bytes += item["Size"]
            else:
                other_files += 1
                other_bytes += item["Size"]
    return data_files, data_bytes, other_files, other_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--start-date", default="1999-01-04")
    parser.add_argument("--chunk-days", type=int, default=365)
    parser.add_argument("--duckdb", action="store_true", help="also time the backfill into DuckDB")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, FrankfurterServer() as api, AwsSandbox() as aws:
        os.environ.update(aws.env())
        os.environ.update(
            {
                "SOURCES__EXCHANGE_RATES__BASE_URL": api.base_url,
                "SOURCES__EXCHANGE_RATES__START_DATE": args.start_date,
                "SOURCES__EXCHANGE_RATES__CHUNK_DAYS": str(args.chunk_days),
                "DLT_DATA_DIR": str(Path(tmp) / "dlt"),
            }
        )
        os.environ.pop("DLT__DESTINATION", None)
        # Unset, the environment is `local`, which loads everything into DuckDB: the landing bucket is
        # production's destination (as in the tests, with the vault off - moto holds no secrets).
        os.environ["DLT__ENVIRONMENT"] = "production"
        os.environ["VAULT__ENABLED"] = "false"
        print(
            f"Frankfurter sandbox publishing {args.start_date} to {api.today}, {args.chunk_days} days per request"
        )

        wall, requests, summary, steps = timed_run(api)
        files, size, other_files, other_size = bucket_figures(aws)
        rows = summary.row_counts.get("exchange_rates", 0)
        print(f"\nFull-history backfill into s3://{aws.bucket} (moto)")
        print(f"  wall time         {wall:8.2f} s  ({', '.join(f'{k} {v:.2f} s' for k, v in steps.items())})")
        print(f"  HTTP requests     {requests:8d}")
        print(f"  rows              {rows:8d}  ({rows / wall:,.0f} rows/s)")
        print(f"  data files        {files:8d}  (Parquet, exchange_rates/exchange_rates/...)")
        print(f"  data bytes        {size:8d}  ({size / max(rows, 1):.1f} bytes/row)")
        print(f"  dlt bookkeeping   {other_files:8d} objects, {other_size} bytes (ignored by the pipe)")

        wall, requests, summary, _ = timed_run(api)
        print("\nNext run, nothing new published")
        print(f"  wall time         {wall:8.2f} s")
        print(f"  HTTP requests     {requests:8d}")
        print(f"  rows              {summary.row_counts.get('exchange_rates', 0):8d}")

        if args.duckdb:
            os.environ.update(
                {
                    "DLT__DESTINATION": "duckdb",
                    "LOCAL__DUCKDB_PATH": str(Path(tmp) / "bench.duckdb"),
                    "DLT_DATA_DIR": str(Path(tmp) / "dlt-duckdb"),
                }
            )
            wall, requests, summary, steps = timed_run(api)
            print("\nFull-history backfill into DuckDB")
            print(
                f"  wall time         {wall:8.2f} s  ({', '.join(f'{k} {v:.2f} s' for k, v in steps.items())})"
            )
            print(f"  HTTP requests     {requests:8d}")
            print(f"  rows              {summary.row_counts.get('exchange_rates', 0):8d}")


if __name__ == "__main__":
    main()
