"""Benchmark: the products pipeline against the direct-copy limit, as processes a user would run.

Not a test - it prints figures. Seeds a sandbox PostgreSQL and measures, side by side in one run,
each variant in a fresh process (so its wall time includes start-up and imports, and its peak RSS
is its own) and, for full loads, into a fresh DuckDB file:

  full loads (--rows products, --rounds rounds, the variants' order rotated every round)
    ours        our pipeline (`pipelines.products.run()`), as configured in sources/products
    adbc        the direct-copy limit: ADBC reads the table into Arrow, DuckDB writes it in one
                statement
    before      our pipeline from another checkout (--before-tree), for before/after in one run
    sqlalchemy  opt-in (--sqlalchemy): dlt's default sqlalchemy backend, the naive baseline; it
                peaked at 17.8 GB RSS at 1M rows - only on a machine with the memory to spare
    duckdb-pg   opt-in (--duckdb-postgres PYTHON): DuckDB's own postgres extension (ATTACH +
                CREATE TABLE AS), a second reference, run by a separate interpreter: PyPI has the
                extension only for DuckDB 1.5.5 (`duckdb-extension-postgres`), not for the project's
                DuckDB 2.0, and DuckDB's own extension download is not reachable offline:
                    uv venv /tmp/pgext && uv pip install --python /tmp/pgext/bin/python \
                        duckdb==1.5.5 duckdb-extension-postgres==1.5.5
                then pass --duckdb-postgres /tmp/pgext/bin/python

    --alt       opt-in (--alt NAME:KEY=VALUE,...): our pipeline with other settings, e.g.
                nocomp:DATA_WRITER__COMPRESSION=none (uncompressed Parquet),
                part2:SOURCES__PRODUCTS__FIRST_LOAD_PARTITIONS=2 (a first load read in two id
                ranges at once), onefile:DATA_WRITER__FILE_MAX_ITEMS=100000000 (no file rotation)

  guarantees (--guarantees, alone): the key reconciliation's cost after --deleted rows are deleted
  upstream, the rows the late-commit guard re-reads while a transaction stays open, and the scan an
  xmin cursor would need instead.

  incremental runs (--incremental-sizes, e.g. 1000000,3000000): one full load per variant (not
  timed), then every round changes --changed products and runs each variant again as the command
  a user runs, `python -m pipelines products` (from the variant's checkout): its whole-process
  wall and CPU time; then, untimed, the rows it read and dlt's step times from the trace dlt saved.
  "in-proc" is there the duration of dlt's `pipeline.run` in that trace (extract, normalise, load;
  not the engine's checks before it nor its report after).

Every checkout's own modules are compiled to bytecode first, as `./dev setup` does (with
PYTHONDONTWRITEBYTECODE set, a checkout without bytecode would recompile them in every process).
Each figure is reported as the median of the rounds with min and max, beside the load average,
because the machine is shared. "process" is the wall time of the whole process (interpreter start
to exit), "in-proc" the time of the work alone after imports, "cpu" the process's user + system
CPU time (less sensitive to other load than wall time).

    uv run python bench/products.py --rows 1000000 --rounds 3
    uv run python bench/products.py --rows 200000 --rounds 3 --incremental-sizes 1000000,3000000
    uv run python bench/products.py --rows 5000000 --rounds 1 --variants ours   # peak RSS at 5M
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# -- worker: one variant, in this process ------------------------------------------------------


def worker(variant: str, workdir: Path) -> dict[str, Any]:
    """Run one variant in this process (settings come from the environment) and return its figures."""
    import resource

    workdir.mkdir(parents=True, exist_ok=True)
    credentials = json.loads(os.environ["BENCH_PG"])
    started_imports = time.perf_counter()
    if variant == "trace":  # what the last run in this working directory did, from dlt's trace
        import dlt

        imported = time.perf_counter()
        trace = dlt.attach(pipeline_name="products").last_trace
        counts = trace.last_normalize_info.row_counts if trace.last_normalize_info else {}
        return {
            "rows": counts.get("products", 0),
            "seconds": (trace.finished_at - trace.started_at).total_seconds(),
            "imports": None,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "steps": {s.step: (s.finished_at - s.started_at).total_seconds() for s in trace.steps},
        }
    if variant not in ("adbc", "duckdb-pg"):  # ours, before, sqlalchemy and --alt variants
        from pipelines.products import pipeline, run

        imported = time.perf_counter()
        run()
        seconds = time.perf_counter() - imported
        # After the clock stopped: `run()` returns dlt's LoadInfo or a report, depending on the
        # checkout; the trace dlt keeps in the working directory is the same in both.
        trace = pipeline().last_trace
        counts = trace.last_normalize_info.row_counts if trace.last_normalize_info else {}
        rows = counts.get("products", 0)
        steps = {s.step: (s.finished_at - s.started_at).total_seconds() for s in trace.steps}
    elif variant == "adbc":
        import adbc_driver_postgresql.dbapi
        import duckdb

        imported = time.perf_counter()
        from urllib.parse import quote

        quoted = {k: quote(str(v), safe="") for k, v in credentials.items()}
        url = "postgresql://{username}:{password}@{host}:{port}/{database}".format(**quoted)
        with adbc_driver_postgresql.dbapi.connect(url) as conn, conn.cursor() as cur:
            cur.execute("select * from products")
            table = cur.fetch_arrow_table()
        with duckdb.connect(str(workdir / "warehouse.duckdb")) as con:
            con.register("arrow_products", table)
            con.execute("create table products as select * from arrow_products")
        rows = table.num_rows
        seconds = time.perf_counter() - imported
        steps = {}
    else:
        import duckdb

        imported = time.perf_counter()
        con = duckdb.connect(str(workdir / "warehouse.duckdb"))
        _load_postgres_extension(con)
        dsn = "host={host} port={port} dbname={database} user={username} password={password}".format(
            **credentials
        )
        quoted_dsn = dsn.replace("'", "''")
        con.execute(f"ATTACH '{quoted_dsn}' AS pg (TYPE postgres, READ_ONLY)")
        con.execute("create table products as select * from pg.public.products")
        row = con.execute("select count(*) from products").fetchone()
        rows = int(row[0]) if row else 0
        con.close()
        seconds = time.perf_counter() - imported
        steps = {}
    return {
        "rows": rows,
        "seconds": seconds,
        "imports": imported - started_imports,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "steps": steps,
    }


def _load_postgres_extension(con: Any) -> None:
    import contextlib
    import importlib

    with contextlib.suppress(Exception):  # not in DuckDB's extension directory: try a wheel's copy
        con.execute("LOAD postgres")
        return

    for module in ("duckdb_extension_postgres", "duckdb_extension_postgres_scanner", "duckdb_ext_postgres"):
        try:
            package = importlib.import_module(module)
        except ImportError:
            continue
        for path in Path(next(iter(package.__path__))).rglob("*.duckdb_extension"):
            # DuckDB finds the entry point from the file name: the wheel's `postgres.duckdb_extension`
            # is the `postgres_scanner` extension.
            import shutil
            import tempfile

            copy = Path(tempfile.mkdtemp()) / "postgres_scanner.duckdb_extension"
            shutil.copy(path, copy)
            con.execute(f"LOAD '{copy}'")
            return
    raise SystemExit("DuckDB's postgres extension is not installed for this interpreter")


# -- parent: seed, run processes, summarise ------------------------------------------------------


def variant_env(
    variant: str, workdir: Path, credentials: dict[str, Any], tree: Path, extra_env: dict[str, str]
) -> dict[str, str]:
    """The environment of a variant's process: its DuckDB file, dlt working directory and settings."""
    env = {
        **os.environ,
        "DLT__DESTINATION": "duckdb",
        "LOCAL__DUCKDB_PATH": str(workdir / "warehouse.duckdb"),
        "DLT_DATA_DIR": str(workdir / "dlt"),
        "BENCH_PG": json.dumps(credentials),
        **{f"SOURCES__PRODUCTS__CREDENTIALS__{k.upper()}": str(v) for k, v in credentials.items()},
        **extra_env,
    }
    if tree != ROOT:
        env["PYTHONPATH"] = str(tree)
    if variant == "sqlalchemy":
        env["SOURCES__PRODUCTS__BACKEND"] = "sqlalchemy"
    return env


def run_process(
    variant: str,
    workdir: Path,
    credentials: dict[str, Any],
    *,
    python: str,
    tree: Path,
    extra_env: dict[str, str],
) -> dict[str, Any]:
    """Run one variant as a whole process; add its wall time, CPU time and peak RSS as the OS saw them."""
    env = variant_env(variant, workdir, credentials, tree, extra_env)
    started = time.perf_counter()
    child = subprocess.Popen(
        [python, str(Path(__file__).resolve()), "--worker", variant, "--workdir", str(workdir)],
        cwd=tree,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = child.communicate()
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"variant {variant} failed:\n{err[-3000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["process"] = wall
    return result


def _child_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(
    variant: str, workdir: Path, credentials: dict[str, Any], settings: dict[str, Any]
) -> dict[str, Any]:
    python, tree = settings["python"].get(variant, sys.executable), settings["trees"].get(variant, ROOT)
    cpu_before = _child_cpu()
    extra_env = {**settings["env"], **settings["alt"].get(variant, {})}
    result = run_process(variant, workdir, credentials, python=python, tree=tree, extra_env=extra_env)
    result["cpu"] = _child_cpu() - cpu_before
    return result


def measure_command(
    variant: str, workdir: Path, credentials: dict[str, Any], settings: dict[str, Any]
) -> dict[str, Any]:
    """Run `python -m pipelines products` from the variant's checkout as a user would, timed whole.

    Its wall and CPU time; then, in another process that is not timed, the rows read and the step
    times from the trace dlt saved in the working directory.
    """
    python, tree = settings["python"].get(variant, sys.executable), settings["trees"].get(variant, ROOT)
    extra_env = {**settings["env"], **settings["alt"].get(variant, {})}
    env = variant_env(variant, workdir, credentials, tree, extra_env)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(
            [python, "-m", "pipelines", "products"], cwd=tree, env=env, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(child.pid, 0)  # this child's own CPU time and peak RSS
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if child.returncode != 0:
        raise SystemExit(f"variant {variant} failed:\n{stderr[-3000:]}")
    if "nanobind" in stderr:
        raise SystemExit(f"variant {variant} printed nanobind leak lines at exit:\n{stderr[-3000:]}")
    result = run_process("trace", workdir, credentials, python=python, tree=tree, extra_env=extra_env)
    return {
        **result,
        "process": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


# The project's own packages, as `./dev setup` compiles them.
PROJECT_PACKAGES = ("sources", "pipelines", "flows", "utils", "sandbox", "tools", "automations")


def compile_bytecode(tree: Path) -> None:
    """Compile a checkout's own modules, as `./dev setup` does, so every variant starts alike.

    Where PYTHONDONTWRITEBYTECODE is set (it is on this project's machines), a module whose bytecode
    is missing or older than its source is compiled again by every process: a checkout made for
    --before-tree, or files changed since the last setup, would otherwise pay that on every run.
    """
    packages = [name for name in PROJECT_PACKAGES if (tree / name).is_dir()]
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", *packages],
        cwd=tree,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def summarise(title: str, results: dict[str, list[dict[str, Any]]], reference: str | None) -> None:
    """Print median [min-max] per figure and variant, and ratios to the reference variant."""
    print(f"\n{title}")
    header = f"{'variant':<11} {'rows':>9} {'process s':>19} {'in-proc s':>19} {'cpu s':>19} {'imports s':>9} {'peak RSS MB':>11}"
    print(header)

    def cell(values: Sequence[float]) -> str:
        return f"{statistics.median(values):6.2f} [{min(values):5.2f}-{max(values):5.2f}]"

    for variant, runs in results.items():
        rows = statistics.median(r["rows"] for r in runs)
        print(
            f"{variant:<11} {rows:>9,.0f} {cell([r['process'] for r in runs]):>19} "
            f"{cell([r['seconds'] for r in runs]):>19} {cell([r['cpu'] for r in runs]):>19} "
            f"{_imports(runs):>9} {max(r['peak_rss_mb'] for r in runs):>11.0f}"
        )
    steps = {v: runs for v, runs in results.items() if runs[0]["steps"]}
    for variant, runs in steps.items():
        names = list(runs[0]["steps"])
        text = ", ".join(f"{n} {statistics.median(r['steps'].get(n, 0.0) for r in runs):.2f}" for n in names)
        print(f"  {variant} dlt steps (median s): {text}")
    if reference and reference in results:
        ref = results[reference]
        for variant, runs in results.items():
            if variant == reference:
                continue
            # Speed ratio per round (same round = similar load), then the median of those. Every
            # variant reads the same table; the loaded row counts differ only by the soft-deleted
            # rows, which a first load drops (ours) or loads and deletes again (merge).
            # CPU time too: on a shared machine it moves much less with other load than wall time.
            for figure, label in (
                ("process", "whole process"),
                ("seconds", "in-process"),
                ("cpu", "cpu time"),
            ):
                ratios = [c[figure] / r[figure] for r, c in zip(runs, ref, strict=False) if r[figure]]
                if ratios:
                    print(
                        f"  {variant} speed vs {reference} ({reference} time / {variant} time), {label}: "
                        f"{statistics.median(ratios):.2f}x "
                        f"[{min(ratios):.2f}-{max(ratios):.2f}]"
                    )


def _imports(runs: list[dict[str, Any]]) -> str:
    known = [r["imports"] for r in runs if r.get("imports") is not None]
    return f"{statistics.median(known):.2f}" if known else "-"


def full_loads(
    credentials: dict[str, Any], variants: list[str], rounds: int, tmp: Path, settings: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for round_no in range(rounds):
        order = variants[round_no % len(variants) :] + variants[: round_no % len(variants)]
        for variant in order:
            workdir = tmp / f"full-{variant}-{round_no}"
            result = measure(variant, workdir, credentials, settings)
            results[variant].append(result)
            print(
                f"  round {round_no + 1} {variant:<10} process {result['process']:6.2f} s  in-proc "
                f"{result['seconds']:6.2f} s  rows {result['rows']:,}  load {loadavg()}",
                flush=True,
            )
            subprocess.run(["rm", "-rf", str(workdir)], check=False)
    return results


def incremental_runs(
    server: Any,
    credentials: dict[str, Any],
    variants: list[str],
    rounds: int,
    changed: int,
    tmp: Path,
    settings: dict[str, Any],
) -> dict[str, list[dict[str, Any]]]:
    from sandbox.postgres import CatalogueMutator

    mutator = CatalogueMutator(server.dsn)
    workdirs = {v: tmp / f"incremental-{v}" for v in variants}
    for variant, workdir in workdirs.items():
        first = measure(variant, workdir, credentials, settings)
        print(f"  first load {variant:<10} process {first['process']:6.2f} s (not counted)", flush=True)
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for round_no in range(rounds):
        mutator.update_products(changed)
        order = variants[round_no % len(variants) :] + variants[: round_no % len(variants)]
        for variant in order:
            result = measure_command(variant, workdirs[variant], credentials, settings)
            results[variant].append(result)
            print(
                f"  round {round_no + 1} {variant:<10} process {result['process']:6.2f} s  in-proc "
                f"{result['seconds']:6.2f} s  rows read {result['rows']:,} for {changed:,} changed  "
                f"load {loadavg()}",
                flush=True,
            )
    for workdir in workdirs.values():
        subprocess.run(["rm", "-rf", str(workdir)], check=False)
    return results


# -- guarantees: the cost of the late-commit guard and of the key reconciliation -------------------


def guarantees(rows: int, changed: int, deleted: int) -> None:
    """Measure, in this process, what issue 11's guarantees cost at `rows` products.

    * Key reconciliation: after a full load, `deleted` products are deleted physically upstream, then
      one reconciliation of `products` compares every id on both sides (in chunks) and deletes them.
    * Late-commit guard: incremental runs while a transaction stays open; the rows each run read
      beyond those changed since the previous run are the re-read cost.
    * The alternative weighed, an xmin cursor: every run must scan the whole table (xmin has no index).
    """
    import duckdb
    import psycopg2
    import sqlalchemy as sa

    from sandbox.postgres import CatalogueMutator, PostgresServer, seed_catalogue, to_libpq_url

    with PostgresServer() as server, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ.update(
            {
                "DLT__DESTINATION": "duckdb",
                "LOCAL__DUCKDB_PATH": str(tmp / "warehouse.duckdb"),
                "DLT_DATA_DIR": str(tmp / "dlt"),
                "SOURCES__PRODUCTS__RECONCILE_EVERY_RUNS": "0",  # measured on its own below
                **{
                    f"SOURCES__PRODUCTS__CREDENTIALS__{k.upper()}": str(v)
                    for k, v in server.dlt_credentials().items()
                },
            }
        )
        started = time.perf_counter()
        seed_catalogue(server.dsn, products=rows)
        print(f"seeded {rows:,} products in {time.perf_counter() - started:.1f} s", flush=True)
        from pipelines.products import pipeline, run
        from sources.products.reconcile import RECONCILE_CHUNK_SIZE, reconcile_table, source_key_chunks
        from utils.key_reconciliation import SqlClientKeys

        def rows_read() -> int:
            trace = pipeline().last_trace
            counts = trace.last_normalize_info.row_counts if trace and trace.last_normalize_info else {}
            return int(counts.get("products", 0))

        started = time.perf_counter()
        run()
        print(f"full load: {rows_read():,} rows in {time.perf_counter() - started:.1f} s", flush=True)

        # -- key reconciliation
        owner = psycopg2.connect(to_libpq_url(server.dsn))
        with owner, owner.cursor() as cur:
            cur.execute(
                "delete from products where id in (select id from products order by hashint8(id) limit %s)",
                (deleted,),
            )
        engine = sa.create_engine(server.reader_dsn)
        started = time.perf_counter()
        source_ids = sum(len(c) for c in source_key_chunks(engine, "products", "id", RECONCILE_CHUNK_SIZE))
        source_seconds = time.perf_counter() - started
        with SqlClientKeys(pipeline()) as destination:
            started = time.perf_counter()
            result = reconcile_table(engine, destination, "products")
            seconds = time.perf_counter() - started
        with duckdb.connect(str(tmp / "warehouse.duckdb"), read_only=True) as con:
            left = con.sql("select count(*) from products.products").fetchall()[0][0]
        print(
            f"key reconciliation: {result.source_keys:,} ids upstream vs {result.destination_keys:,} in the "
            f"destination, {result.deleted:,} deleted, in {seconds:.2f} s "
            f"(upstream ids alone: {source_ids:,} in {source_seconds:.2f} s); destination now {left:,} rows",
            flush=True,
        )

        # -- late-commit guard: rows re-read while a transaction stays open
        mutator = CatalogueMutator(server.dsn)
        mutator.update_products(changed)
        run()
        print(f"incremental, no open transaction: read {rows_read():,} for {changed:,} changed", flush=True)
        holder = psycopg2.connect(to_libpq_url(server.dsn))
        with holder.cursor() as cur:
            cur.execute("select now()")  # an open transaction that has not written yet
            for step in (1, 2, 3):
                mutator.update_products(changed)
                run()
                print(
                    f"incremental {step}, transaction open: read {rows_read():,} for {changed:,} changed since "
                    f"the previous run ({rows_read() - changed:,} re-read)",
                    flush=True,
                )
        holder.commit()
        holder.close()
        mutator.update_products(changed)
        run()
        print(f"incremental after it ended: read {rows_read():,} for {changed:,} changed", flush=True)
        run()
        print(f"incremental, nothing changed: read {rows_read():,}", flush=True)

        # -- the alternative weighed: an xmin cursor reads the whole table every run
        with owner, owner.cursor() as cur:
            cur.execute("select pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            xmin = cur.fetchone()[0]
            for label, query, argument in (
                ("updated_at >= (index range)", "select count(*) from products where updated_at >= %s", None),
                (
                    "xmin >= (whole-table scan)",
                    "select count(*) from products where xmin::text::bigint >= %s",
                    xmin - 10,
                ),
            ):
                if argument is None:
                    cur.execute("select max(updated_at) - interval '1 minute' from products")
                    argument = cur.fetchone()[0]
                started = time.perf_counter()
                cur.execute(query, (argument,))
                count = cur.fetchone()[0]
                print(
                    f"cursor query {label}: {count:,} rows in {time.perf_counter() - started:.3f} s",
                    flush=True,
                )
        owner.close()
        engine.dispose()


def main() -> None:
    """Parse the arguments, seed, measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="products for the full loads (default 1,000,000)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per variant (default 3)")
    parser.add_argument(
        "--variants", default="ours,adbc", help="full-load variants, comma-separated (default ours,adbc)"
    )
    parser.add_argument(
        "--sqlalchemy", action="store_true", help="add the sqlalchemy baseline (needs ~18 GB RAM at 1M)"
    )
    parser.add_argument(
        "--duckdb-postgres",
        metavar="PYTHON",
        help="add DuckDB's postgres extension, run by this interpreter (one with duckdb + the extension)",
    )
    parser.add_argument("--before-tree", type=Path, help="a checkout to run as variant 'before' beside ours")
    parser.add_argument(
        "--incremental-sizes",
        default="",
        help="catalogue sizes for the incremental runs, comma-separated (default: none; 'rows' = --rows)",
    )
    parser.add_argument(
        "--changed", type=int, default=1000, help="products changed before each incremental run"
    )
    parser.add_argument("--skip-full", action="store_true", help="only the incremental runs")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra setting for our pipeline's processes",
    )
    parser.add_argument(
        "--alt",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE[,KEY=VALUE]",
        help="an extra variant: our pipeline with these settings (e.g. nocomp:DATA_WRITER__COMPRESSION=none)",
    )
    parser.add_argument(
        "--guarantees",
        action="store_true",
        help="only measure the key reconciliation and the late-commit guard's re-reads at --rows",
    )
    parser.add_argument("--deleted", type=int, default=1000, help="with --guarantees: rows deleted upstream")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(worker(args.worker, args.workdir)))
        return
    if args.guarantees:
        sys.path.insert(0, str(ROOT))
        guarantees(args.rows, args.changed, args.deleted)
        return

    sys.path.insert(0, str(ROOT))
    from sandbox.postgres import PostgresServer, seed_catalogue

    variants = [v for v in args.variants.split(",") if v]
    settings: dict[str, Any] = {
        "python": {},
        "trees": {},
        "env": dict(item.split("=", 1) for item in args.env),
        "alt": {},
    }
    for alt in args.alt:
        name, _, pairs = alt.partition(":")
        settings["alt"][name] = dict(pair.split("=", 1) for pair in pairs.split(",") if pair)
        variants.append(name)
    if args.sqlalchemy and "sqlalchemy" not in variants:
        variants.append("sqlalchemy")
    if args.duckdb_postgres:
        variants.append("duckdb-pg")
        settings["python"]["duckdb-pg"] = args.duckdb_postgres
    if args.before_tree:
        settings["trees"]["before"] = args.before_tree.resolve()
        if "before" not in variants:
            variants.append("before")
    sizes = [
        args.rows if s == "rows" else int(s.replace("_", "")) for s in args.incremental_sizes.split(",") if s
    ]
    incremental_variants = [v for v in variants if v not in ("adbc", "duckdb-pg", "sqlalchemy")]

    for tree in {ROOT, *settings["trees"].values()}:
        compile_bytecode(tree)
    print(f"load average at start: {loadavg()}  (cores: {os.cpu_count()})")
    with PostgresServer() as server, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        credentials = server.dlt_credentials()
        seeded = -1

        def seed(rows: int) -> None:
            nonlocal seeded
            if rows == seeded:
                return
            started = time.perf_counter()
            seed_catalogue(server.dsn, products=rows)
            seeded = rows
            print(f"seeded {rows:,} products in {time.perf_counter() - started:.1f} s", flush=True)

        if not args.skip_full:
            seed(args.rows)
            print(f"full loads, {args.rounds} round(s): {', '.join(variants)}", flush=True)
            results = full_loads(credentials, variants, args.rounds, tmp, settings)
            summarise(
                f"Full load of {args.rows:,} products (median [min-max] of {args.rounds})", results, "adbc"
            )
        for size in sorted(sizes, key=lambda s: s != seeded):
            seed(size)
            print(f"incremental runs at {size:,} products, {args.rounds} round(s)", flush=True)
            results = incremental_runs(
                server, credentials, incremental_variants, args.rounds, args.changed, tmp, settings
            )
            summarise(
                f"Incremental run at {size:,} products, {args.changed:,} changed (median [min-max] of {args.rounds})",
                results,
                "before" if "before" in results else None,  # before/after ratios per round
            )
    print(f"\nload average at end: {loadavg()}")


if __name__ == "__main__":
    main()
