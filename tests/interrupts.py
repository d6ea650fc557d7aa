"""Stopping a test run cleanly: SIGTERM (and Ctrl-C under pytest-xdist) tears fixtures down.

Python's default SIGTERM ends the process at once, so no fixture's teardown runs and the servers
fixtures started (Prefect's test server, PostgreSQL, moto, a `prefect server start`) are left
behind. Here SIGTERM becomes a `KeyboardInterrupt`, which pytest handles as Ctrl-C: it stops
collecting results and tears every active fixture down, and `atexit` handlers run.

Under pytest-xdist the controller runs no tests itself; it passes the signal on to its workers and
waits for them to finish their teardown before it stops, so that xdist does not kill a worker
(after its 10-second exit timeout) while that worker is still stopping its servers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

# How long the controller waits for its workers to tear down before it stops anyway.
WORKER_TEARDOWN_SECONDS = 120.0
# Where workers note that their teardown is done (set by the controller, inherited by workers).
DONE_DIR_VARIABLE = "TESTS_INTERRUPT_DONE_DIR"

_interrupted = threading.Event()
# The directory this process made as an xdist controller (removed again by `finish`).
_done_dirs: list[str] = []


def _children() -> list[int]:
    """The process ids of this process's direct children (Linux `/proc`; empty elsewhere)."""
    pids: list[int] = []
    for task in Path("/proc/self/task").glob("*"):
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return pids


def _running(pid: int) -> bool:
    """True while `pid` exists and has not exited (a zombie waiting to be reaped has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _interrupt_once(signum: int, frame: FrameType | None) -> None:
    """The first SIGTERM interrupts the run like Ctrl-C; repeats are ignored while teardown runs."""
    if _interrupted.is_set():
        return
    _interrupted.set()
    raise KeyboardInterrupt(f"stopped by signal {signal.Signals(signum).name}")


def _controller_interrupt(signum: int, frame: FrameType | None) -> None:
    """xdist controller: pass the signal to the workers, wait for their teardown, then stop."""
    if _interrupted.is_set():
        return
    _interrupted.set()
    workers = _children()
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    done = Path(os.environ.get(DONE_DIR_VARIABLE, "/nonexistent"))
    deadline = time.monotonic() + WORKER_TEARDOWN_SECONDS
    while time.monotonic() < deadline and any(
        _running(pid) and not (done / str(pid)).exists() for pid in workers
    ):
        time.sleep(0.1)
    raise KeyboardInterrupt(f"stopped by signal {signal.Signals(signum).name}")


def install(*, xdist_controller: bool, xdist_worker: bool) -> None:
    """Install the handlers in this (main-thread) pytest process.

    Args:
        xdist_controller: This process distributes tests to xdist workers and runs none itself.
        xdist_worker: This process is an xdist worker.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if xdist_controller:
        _done_dirs.append(tempfile.mkdtemp(prefix="pytest-interrupt-"))
        os.environ[DONE_DIR_VARIABLE] = _done_dirs[-1]
        signal.signal(signal.SIGTERM, _controller_interrupt)
        signal.signal(signal.SIGINT, _controller_interrupt)
    else:
        signal.signal(signal.SIGTERM, _interrupt_once)
        if xdist_worker:
            # A terminal's Ctrl-C reaches the workers too, and then the controller's SIGTERM:
            # one interruption, one teardown.
            signal.signal(signal.SIGINT, _interrupt_once)


def note_teardown_done() -> None:
    """In an interrupted xdist worker, after teardown: tell the controller it may stop now."""
    done = os.environ.get(DONE_DIR_VARIABLE)
    if _interrupted.is_set() and done and Path(done).is_dir():
        (Path(done) / str(os.getpid())).touch()


def finish() -> None:
    """In the xdist controller, at the end: remove the directory the workers noted teardown in."""
    while _done_dirs:
        shutil.rmtree(_done_dirs.pop(), ignore_errors=True)


def run(
    command: list[str], *, timeout: float, grace: float = 60.0, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """`subprocess.run(..., capture_output=True, text=True)` for a child that starts servers.

    `subprocess.run` SIGKILLs its child when interrupted or timed out, so a child that started a
    Prefect server or PostgreSQL leaves them running. Here the child gets its own session and, on
    an interruption or timeout, SIGTERM to its whole process group and `grace` seconds to stop its
    servers, then SIGKILL.
    """
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kwargs,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except BaseException:
            stop_group(process, grace)
            raise
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def stop_group(process: subprocess.Popen[Any], grace: float) -> None:
    """SIGTERM to the process group led by `process`, SIGKILL after `grace` seconds if it lingers."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
