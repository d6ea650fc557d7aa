"""Benchmark: what running a pipeline through its Prefect flow costs on top of `run()` alone.

Not a test - it prints figures. Starts the sandbox's Frankfurter API and a Prefect server (its own
PREFECT_HOME and SQLite file, on loopback), then runs, as whole processes, interleaved over
--rounds rounds:

    run        python -c "from pipelines.<name> import run; run()"
    flow       python flows/<name>.py against the running Prefect server (PREFECT_API_URL set)
    ephemeral  python flows/<name>.py with no PREFECT_API_URL: Prefect starts a temporary server
               in the process (opt-in: --ephemeral; it alone takes several seconds)

and prints each one's wall and CPU time (median [min-max]) and the flow's overhead over `run()`
(target: <= 1.5 s against a running server), beside the load average.

    uv run python bench/flows.py --pipeline currencies --rounds 5 --ephemeral
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SERVER_STARTUP_SECONDS = 120


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def timed(command: list[str], env: dict[str, str]) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    cwd = env.get("PYTHONPATH", str(ROOT))
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"wall": wall, "cpu": cpu}


def cell(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} [{min(values):5.2f}-{max(values):5.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--pipeline", default="currencies", help="a pipeline served by the Frankfurter sandbox"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--ephemeral", action="store_true", help="also time the flow with an ephemeral server"
    )
    parser.add_argument(
        "--before-tree",
        type=Path,
        help="another checkout: also time its run() and flow (run-before, flow-before)",
    )
    args = parser.parse_args()

    from sandbox.frankfurter import FrankfurterServer
    from tests.prefect_server import PrefectServerProcess

    print(f"load average at start: {loadavg()}  (cores: {os.cpu_count()})")
    with tempfile.TemporaryDirectory() as tmp_name, FrankfurterServer() as api:
        tmp = Path(tmp_name)
        (tmp / "server").mkdir()
        server = PrefectServerProcess(tmp / "server", startup_timeout=SERVER_STARTUP_SECONDS)
        server.start()
        api_url = server.api_url
        try:
            base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
            base.update(
                {
                    "DLT__DESTINATION": "duckdb",
                    "LOCAL__DUCKDB_PATH": str(tmp / "warehouse.duckdb"),
                    "DLT_DATA_DIR": str(tmp / "dlt"),
                    f"SOURCES__{args.pipeline.upper()}__BASE_URL": api.base_url,
                    "PREFECT_HOME": str(tmp / "client"),
                }
            )
            commands: dict[str, tuple[list[str], dict[str, str]]] = {
                "run": (
                    [sys.executable, "-c", f"from pipelines.{args.pipeline} import run; run()"],
                    base,
                ),
                "flow": ([sys.executable, f"flows/{args.pipeline}.py"], {**base, "PREFECT_API_URL": api_url}),
            }
            if args.ephemeral:
                commands["ephemeral"] = (
                    [sys.executable, f"flows/{args.pipeline}.py"],
                    {
                        **base,
                        "PREFECT_HOME": str(tmp / "ephemeral"),
                        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
                    },
                )
            if args.before_tree:
                tree = {"PYTHONPATH": str(args.before_tree.resolve())}
                commands["run-before"] = (commands["run"][0], {**commands["run"][1], **tree})
                commands["flow-before"] = (commands["flow"][0], {**commands["flow"][1], **tree})
            timed(*commands["run"])  # the first load; every timed round then replaces the same rows
            results: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
            names = list(commands)
            for round_no in range(args.rounds):
                for name in names[round_no % len(names) :] + names[: round_no % len(names)]:
                    result = timed(*commands[name])
                    results[name].append(result)
                    print(
                        f"  round {round_no + 1} {name:<9} wall {result['wall']:6.2f} s  cpu {result['cpu']:6.2f} s"
                        f"  load {loadavg()}",
                        flush=True,
                    )
        finally:
            server.stop()

    print(f"\n{args.pipeline}: whole processes, median [min-max] of {args.rounds}")
    print(f"{'variant':<10} {'wall s':>19} {'cpu s':>19}")
    for name, runs in results.items():
        print(f"{name:<10} {cell([r['wall'] for r in runs]):>19} {cell([r['cpu'] for r in runs]):>19}")
    for name in [n for n in results if n.startswith(("flow", "ephemeral"))]:
        base = "run-before" if name.endswith("-before") else "run"
        extra: list[Any] = [f["wall"] - r["wall"] for f, r in zip(results[name], results[base], strict=True)]
        target = "  (target <= 1.5 s)" if name.startswith("flow") else ""
        print(f"{name} - {base}, same round: {cell(extra)} s{target}")
        cpu: list[Any] = [f["cpu"] - r["cpu"] for f, r in zip(results[name], results[base], strict=True)]
        print(f"{name} - {base}, CPU time, same round: {cell(cpu)} s")
    print(f"\nload average at end: {loadavg()}")


if __name__ == "__main__":
    main()
