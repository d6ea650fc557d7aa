"""Benchmark: the products pipeline against the naive baseline and the direct-copy limit.

Not a test - it prints figures. Seeds a sandbox PostgreSQL with N products, then measures, side by
side in one run and each into a fresh DuckDB file:

  (a) our pipeline, full load (sql_table, pyarrow backend, as configured in sources/products)
  (b) the same source with dlt's default sqlalchemy backend - the naive baseline
  (c) the direct-copy limit: ADBC reads the table into Arrow, DuckDB writes it in one statement
  (d) our pipeline's incremental run after 0.1% of the rows changed

Each variant runs in its own process so its peak RSS is its own.

    uv run python bench/products.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def worker(variant: str, workdir: Path, credentials: dict[str, Any]) -> dict[str, Any]:
    """Run one variant in this process and return its figures."""
    os.environ.update(
        {
            "DLT__DESTINATION": "duckdb",
            "LOCAL__DUCKDB_PATH": str(workdir / "warehouse.duckdb"),
            "DLT_DATA_DIR": str(workdir / "dlt"),
            **{f"SOURCES__PRODUCTS__CREDENTIALS__{k.upper()}": str(v) for k, v in credentials.items()},
        }
    )
    workdir.mkdir(parents=True, exist_ok=True)
    # Imports first: the figures are about moving rows, not about Python start-up.
    import adbc_driver_postgresql.dbapi
    import duckdb

    from pipelines.products import run
    from sandbox.postgres import to_libpq_url

    started = time.perf_counter()
    if variant == "direct":
        url = to_libpq_url(
            "postgresql://{username}:{password}@{host}:{port}/{database}".format(**credentials)
        )
        with adbc_driver_postgresql.dbapi.connect(url) as conn, conn.cursor() as cur:
            cur.execute("select * from products")
            table = cur.fetch_arrow_table()
        with duckdb.connect(str(workdir / "warehouse.duckdb")) as con:
            con.register("arrow_products", table)
            con.execute("create table products as select * from arrow_products")
        rows = table.num_rows
    else:
        if variant == "sqlalchemy":
            os.environ["SOURCES__PRODUCTS__BACKEND"] = "sqlalchemy"
        info = run()
        counts = info.pipeline.last_trace.last_normalize_info.row_counts  # type: ignore[attr-defined]
        rows = counts.get("products", 0)
    seconds = time.perf_counter() - started
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": variant, "rows": rows, "seconds": seconds, "peak_rss_mb": peak_rss_mb}


def run_variant(variant: str, workdir: Path, credentials: dict[str, Any]) -> dict[str, Any]:
    """Run a variant in a fresh process (so peak RSS is per variant)."""
    out = subprocess.run(
        [sys.executable, __file__, "--worker", variant, "--workdir", str(workdir)],
        input=json.dumps(credentials),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"variant {variant} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Seed, measure every variant, print the table and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000, help="products to seed (default 1,000,000)")
    parser.add_argument("--skip-baseline", action="store_true", help="skip (b), the slow sqlalchemy run")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        credentials = json.loads(sys.stdin.read())
        print(json.dumps(worker(args.worker, args.workdir, credentials)))
        return

    from sandbox.postgres import CatalogueMutator, PostgresServer, seed_catalogue

    with PostgresServer() as server, tempfile.TemporaryDirectory() as tmp:
        print(f"seeding {args.rows:,} products ...", flush=True)
        t = time.perf_counter()
        seed_catalogue(server.dsn, products=args.rows)
        print(f"seeded in {time.perf_counter() - t:.1f} s", flush=True)
        credentials = server.dlt_credentials()
        results: dict[str, dict[str, Any]] = {}

        ours = Path(tmp) / "a"
        results["a"] = run_variant("pipeline", ours, credentials)
        print(f"(a) done: {results['a']['seconds']:.1f} s", flush=True)
        results["c"] = run_variant("direct", Path(tmp) / "c", credentials)
        print(f"(c) done: {results['c']['seconds']:.1f} s", flush=True)
        if not args.skip_baseline:
            results["b"] = run_variant("sqlalchemy", Path(tmp) / "b", credentials)
            print(f"(b) done: {results['b']['seconds']:.1f} s", flush=True)

        changed = max(1, args.rows // 1000)
        CatalogueMutator(server.dsn).update_products(changed)
        results["d"] = run_variant("pipeline", ours, credentials)  # same state: incremental
        results["d"]["changed"] = changed

    labels = {
        "a": "(a) our pipeline, full load",
        "b": "(b) sqlalchemy backend (naive)",
        "c": "(c) ADBC -> DuckDB (direct copy)",
        "d": "(d) our pipeline, incremental (0.1%)",
    }
    print()
    print(f"{'variant':<40} {'rows':>10} {'seconds':>9} {'rows/s':>11} {'peak RSS MB':>12}")
    for key, r in results.items():
        rate = r["rows"] / r["seconds"] if r["seconds"] else 0.0
        print(
            f"{labels[key]:<40} {r['rows']:>10,} {r['seconds']:>9.2f} {rate:>11,.0f} {r['peak_rss_mb']:>12.0f}"
        )
    print()

    def throughput(key: str) -> float:
        return float(results[key]["rows"] / results[key]["seconds"])

    print(f"(a)/(c) throughput vs direct copy: {throughput('a') / throughput('c'):.2f}x  (target >= 0.5)")
    if "b" in results:
        print(f"(a)/(b) throughput vs sqlalchemy:  {throughput('a') / throughput('b'):.1f}x")
    print(
        f"(d)/(a) incremental wall time:     {results['d']['seconds'] / results['a']['seconds']:.3f}"
        f"  (target <= 0.10); rows read {results['d']['rows']:,} for {results['d']['changed']:,} changed"
    )


if __name__ == "__main__":
    main()
