"""Benchmark: what running a pipeline through its Prefect flow costs on top of `run()` alone.

Not a test - it prints figures. Starts the sandbox's Frankfurter API and a Prefect server (its own
PREFECT_HOME and SQLite file, on loopback), then runs, as whole processes, interleaved over
--rounds rounds:

    run        python -c "from pipelines.<name> import run; run()"
    flow       python flows/<name>.py against the running Prefect server (PREFECT_API_URL set)
    ephemeral  python flows/<name>.py with no PREFECT_API_URL: Prefect starts a temporary server
               in the process (opt-in: --ephemeral; it alone takes several seconds)

and prints each one's wall and CPU time (median [min-max]) and the flow's overhead over `run()`
(target: <= 1.5 s against a running server), beside the load average. --before-tree times another
checkout's run() and flow in the same rounds; --anatomy then traces one more flow process: when each
phase ends (Prefect imported, flow and task started, pipeline imported, lock, run(), artifact, the
heartbeat thread joined, exit handlers, process end) and every request it made to the Prefect API.

    uv run python bench/flows.py --pipeline currencies --rounds 5 --ephemeral --anatomy
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


ANATOMY_CHILD = "--anatomy-child"


def anatomy_child(script: str) -> None:
    """Run `script` as a flow process would, noting when each phase ends and every API request.

    Prints one JSON line to stderr from the last exit handler; the parent adds when the process ended.
    """
    import atexit
    import contextlib
    import gc
    import importlib
    import json
    import runpy
    import threading

    # The tree being timed (its working directory), not the one this file is in (--before-tree).
    sys.path.insert(0, os.getcwd())
    started_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    since_start = uptime - started_ticks / os.sysconf("SC_CLK_TCK")  # process age at `t0`
    t0 = time.perf_counter()

    def now() -> float:
        return time.perf_counter() - t0 + since_start

    marks: list[tuple[str, float, float]] = []
    requests: list[tuple[float, float, str, str]] = []

    def mark(what: str) -> None:
        marks.append((what, now(), time.process_time()))

    import httpx

    sync_send, async_send = httpx.Client.send, httpx.AsyncClient.send

    def send(self: httpx.Client, request: httpx.Request, *args: Any, **kwargs: Any) -> httpx.Response:
        start = now()
        try:
            return sync_send(self, request, *args, **kwargs)
        finally:
            requests.append((start, now() - start, request.method, request.url.path))

    async def asend(
        self: httpx.AsyncClient, request: httpx.Request, *args: Any, **kwargs: Any
    ) -> httpx.Response:
        start = now()
        try:
            return await async_send(self, request, *args, **kwargs)
        finally:
            requests.append((start, now() - start, request.method, request.url.path))

    httpx.Client.send = send  # type: ignore[method-assign]
    httpx.AsyncClient.send = asend  # type: ignore[method-assign]
    thread_join = threading.Thread.join

    def join(self: threading.Thread, timeout: float | None = None) -> None:
        start = now()
        thread_join(self, timeout)
        if now() - start > 0.005:
            marks.append((f"joined thread {self.name} ({now() - start:.2f} s)", now(), time.process_time()))

    threading.Thread.join = join  # type: ignore[method-assign]

    def report() -> None:
        mark("last exit handler")
        print(
            "ANATOMY "
            + json.dumps(
                {"marks": marks, "requests": requests, "epoch": time.time(), "frozen": gc.get_freeze_count()}
            ),
            file=sys.stderr,
            flush=True,
        )

    atexit.register(report)
    mark("interpreter ready")
    importlib.import_module("flows")  # its collector settings first, as in `python flows/<name>.py`
    import prefect

    mark("prefect imported")
    module = runpy.run_path(script, run_name="flow_module")
    mark("flow module loaded")
    import flows.common

    lock = flows.common.pipeline_lock
    publish = flows.common.publish_load_report

    @contextlib.contextmanager
    def traced_lock(name: str, *args: Any, **kwargs: Any) -> Any:
        mark("pipeline imported, lock asked for")
        with lock(name, *args, **kwargs):
            mark("lock taken")
            yield
            mark("pipeline run() returned")
        mark("lock released")

    def traced_publish(report: Any) -> None:
        publish(report)
        mark("load report artifact created")

    flows.common.pipeline_lock = traced_lock  # type: ignore[assignment]
    flows.common.publish_load_report = traced_publish  # type: ignore[assignment]
    [flow] = [v for v in module.values() if isinstance(v, prefect.Flow)]
    [task] = [v for v in module.values() if isinstance(v, prefect.Task)]
    task_fn, flow_fn = task.fn, flow.fn

    def traced_task(*args: Any, **kwargs: Any) -> Any:
        mark("task body started")
        try:
            return task_fn(*args, **kwargs)
        finally:
            mark("task body ended")

    def traced_flow(*args: Any, **kwargs: Any) -> Any:
        mark("flow body started")
        try:
            return flow_fn(*args, **kwargs)
        finally:
            mark("flow body ended")

    task.fn = traced_task
    flow.fn = traced_flow
    flow()
    mark("flow call returned")
    if hasattr(flows.common, "run_as_command"):
        # As this tree's `python flows/<name>.py` ends (flows.common.run_as_command).
        from utils import gc_settings

        gc_settings.exit_process(0)


def anatomy(command: list[str], env: dict[str, str]) -> None:
    """One more flow process, traced: when each phase ended (wall and CPU) and every API request."""
    import json
    import re

    child = [command[0], str(Path(__file__).resolve()), ANATOMY_CHILD, *command[1:]]
    cwd = env.get("PYTHONPATH", str(ROOT))
    done = subprocess.run(child, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    ended = time.time()
    found = [line for line in done.stderr.splitlines() if line.startswith("ANATOMY ")]
    if done.returncode != 0 or not found:
        raise SystemExit(f"anatomy run failed:\n{done.stderr[-3000:]}")
    data = json.loads(found[-1][len("ANATOMY ") :])
    marks = [*data["marks"], ["process ended", data["marks"][-1][1] + ended - data["epoch"], None]]
    print(f"\nanatomy of one flow process ({' '.join(command[1:])}), load {loadavg()}:")
    print(f"  {'phase ends':<44} {'at s':>7} {'wall s':>7} {'cpu at s':>8}")
    previous = 0.0
    for what, at, cpu in marks:
        cpu_text = f"{cpu:8.2f}" if cpu is not None else f"{'':>8}"
        print(f"  {what:<44} {at:7.2f} {at - previous:7.2f} {cpu_text}")
        previous = at
    uuid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    by_route: dict[str, list[float]] = {}
    for _start, duration, method, path in data["requests"]:
        by_route.setdefault(f"{method} {uuid.sub('{id}', path)}", []).append(duration)
    total = sum(duration for _s, duration, _m, _p in data["requests"])
    print(f"  {len(data['requests'])} API requests, {total:.2f} s in all (some overlap the run):")
    for route, durations in sorted(by_route.items(), key=lambda item: -sum(item[1])):
        print(f"    {len(durations):2d} x {route:<62} {sum(durations):6.3f} s")
    print(f"  objects frozen by flows.common: {data['frozen']:,}")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == ANATOMY_CHILD:
        anatomy_child(sys.argv[2])
        return

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--pipeline", default="currencies", help="a pipeline served by the Frankfurter sandbox"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--ephemeral", action="store_true", help="also time the flow with an ephemeral server"
    )
    parser.add_argument(
        "--anatomy",
        action="store_true",
        help="after the rounds, trace one more flow process: its phases and API requests",
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
            if args.anatomy:
                anatomy(*commands["flow"])
                if args.before_tree:
                    anatomy(*commands["flow-before"])
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
