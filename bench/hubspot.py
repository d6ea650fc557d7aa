"""Benchmark: the HubSpot pipeline against the sandbox at HubSpot's lowest rate limit.

Runs the real pipeline (`pipelines.hubspot.run`) into a temporary DuckDB file against a sandbox
portal limited to 100 requests per rolling 10 seconds, and prints:

* the request rate achieved under the general limit, as a fraction of the allowed rate (target
  >= 0.95; the pacer's safety margin caps it at 0.976), and the most requests seen in any
  10-second window (must stay <= the limit);
* the number of 429 answers (target 0: the pacer reads the rate-limit headers);
* contacts per second and the wall time of the full load, the CPU time of this process (sandbox
  and pipeline share it) and the machine's load average: a run whose CPU time per request
  approaches 1 / (allowed rate) was limited by the CPU, not by the pacer;
* optionally, the same for an increment (`--modify`, `--archive`) paced through search.

Usage: uv run python bench/hubspot.py [--contacts 50000] [--modify 12000] [--archive 50]
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox.hubspot import SEARCH_PATH, HubSpotServer, RecordedRequest

# Made up per run, as the sandbox does: never a real credential.
TOKEN = f"pat-bench-{secrets.token_hex(8)}"


def most_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def report(
    title: str,
    log: list[RecordedRequest],
    wall: float,
    cpu: float,
    rows: int,
    limit: int,
    window: float,
    search_rate: float,
) -> None:
    general = [r.at for r in log if r.path != SEARCH_PATH]
    searches = [r.at for r in log if r.path == SEARCH_PATH]
    throttled = sum(1 for r in log if r.status == 429)
    allowed = limit / window
    print(f"\n== {title} ==")
    print(f"wall time                      {wall:8.1f} s")
    print(f"CPU time of this process       {cpu:8.1f} s (load average {os.getloadavg()[0]:.1f})")
    print(f"contacts loaded                {rows:8d}")
    print(f"contacts per second            {rows / wall:8.0f}")
    print(f"requests (general / search)    {len(general):8d} / {len(searches)}")
    print(f"429 answers                    {throttled:8d}")
    if len(general) >= 10:
        span = general[-1] - general[0]
        rate = (len(general) - 1) / span
        print(f"general rate                   {rate:8.2f} req/s over {span:.1f} s")
        print(f"  as a fraction of {allowed:g} req/s  {rate / allowed:8.3f}")
        print(f"  most in any {window:g} s window    {most_in_window(general, window):8d} (limit {limit})")
    if len(searches) >= 10:
        span = searches[-1] - searches[0]
        rate = (len(searches) - 1) / span
        print(f"search rate                    {rate:8.2f} req/s (paced at {search_rate:g}/s)")
        print(f"  most in any 1 s window       {most_in_window(searches, 1.0):8d}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--contacts", type=int, default=50_000)
    parser.add_argument("--custom-properties", type=int, default=20)
    parser.add_argument("--rate-limit", type=int, default=100)
    parser.add_argument("--window-seconds", type=float, default=10.0)
    parser.add_argument("--search-rate", type=int, default=5)
    parser.add_argument("--modify", type=int, default=0, help="then modify this many contacts and run again")
    parser.add_argument("--archive", type=int, default=0, help="and archive this many")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="hubspot-bench-"))
    server = HubSpotServer(
        token=TOKEN,
        contacts=args.contacts,
        custom_properties=args.custom_properties,
        rate_limit=args.rate_limit,
        window_seconds=args.window_seconds,
        search_rate_per_second=args.search_rate,
    )
    with server:
        os.environ.update(
            {
                "DLT__DESTINATION": "duckdb",
                "LOCAL__DUCKDB_PATH": str(workdir / "bench.duckdb"),
                "DLT_DATA_DIR": str(workdir / "dlt"),
                "SOURCES__HUBSPOT__BASE_URL": server.base_url,
                "SOURCES__HUBSPOT__ACCESS_TOKEN": TOKEN,
                "SOURCES__HUBSPOT__SEARCH_REQUESTS_PER_SECOND": str(args.search_rate),
            }
        )
        from pipelines import hubspot

        print(
            f"sandbox: {args.contacts} contacts, {len(server.property_definitions)} properties, "
            f"{args.rate_limit} requests / {args.window_seconds:g} s, search {args.search_rate}/s"
        )
        started, cpu_started = time.perf_counter(), time.process_time()
        hubspot.run()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        rows = hubspot.pipeline().last_trace.last_normalize_info.row_counts.get("contacts", 0)  # type: ignore[union-attr]
        report(
            "full load",
            server.requests,
            wall,
            cpu,
            rows,
            args.rate_limit,
            args.window_seconds,
            args.search_rate,
        )

        if args.modify or args.archive:
            server.modify_contacts(args.modify)
            server.archive_contacts(args.archive)
            server.reset_requests()
            started, cpu_started = time.perf_counter(), time.process_time()
            hubspot.run()
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            rows = hubspot.pipeline().last_trace.last_normalize_info.row_counts.get("contacts", 0)  # type: ignore[union-attr]
            title = f"increment ({args.modify} modified, {args.archive} archived)"
            report(
                title,
                server.requests,
                wall,
                cpu,
                rows,
                args.rate_limit,
                args.window_seconds,
                args.search_rate,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
