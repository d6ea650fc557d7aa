"""`./dev sandbox` (`python -m sandbox`): its settings file lives exactly as long as the sandbox.

Real processes and real signals: the sandbox runs as a subprocess in a session of its own, is
stopped the way a person or a supervisor stops it, and the file is looked at from outside.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sandbox.base import write_private

ROOT = Path(__file__).resolve().parents[2]
READY = "Serving until Ctrl-C."


def start(command: list[str], env_file: Path) -> subprocess.Popen[str]:
    """Start the sandbox command and wait until it says it serves (or fail with its output)."""
    process = subprocess.Popen(
        [*command, "--env-file", str(env_file)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    # A thread reads the output, so that waiting for the line can time out.
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or ()], daemon=True).start()
    output: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        output.append(line)
        if line.strip() == READY:
            return process
    stop_session(process)
    raise AssertionError("the sandbox did not start:\n" + "".join(output))


def settings(env_file: Path) -> dict[str, str]:
    """The settings file as `KEY='value'` lines, parsed."""
    return {
        key: value.strip("'")
        for key, value in (line.split("=", 1) for line in env_file.read_text().splitlines())
    }


def listening(url: str) -> bool:
    """Whether something accepts connections at the URL's host and port."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((parts.hostname, parts.port)) == 0


def group_alive(process: subprocess.Popen[str]) -> bool:
    """Whether any process of the group `process` leads still runs (the leader reaped first)."""
    process.poll()
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_session(process: subprocess.Popen[str], grace: float = 30.0) -> None:
    """SIGTERM to every process of the sandbox's group, SIGKILL to what is left after `grace`.

    The whole group, not only `process`: a command that dies without stopping its children leaves
    them in its group, and they must not outlive the test.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while group_alive(process) and time.monotonic() < deadline:
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture
def sandboxes() -> Iterator[list[subprocess.Popen[str]]]:
    """The sandbox processes a test starts; whatever of their sessions still runs is stopped."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        stop_session(process)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_the_settings_file_is_removed_when_the_sandbox_stops(
    signum: signal.Signals, tmp_path: Path, sandboxes: list[subprocess.Popen[str]]
) -> None:
    env_file = tmp_path / ".local" / "sandbox.env"
    process = start([sys.executable, "-m", "sandbox"], env_file)
    sandboxes.append(process)
    written = settings(env_file)
    url = written["SOURCES__EXCHANGE_RATES__BASE_URL"]
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert listening(url)

    os.killpg(process.pid, signum)  # as Ctrl-C (the whole group), a supervisor or a closed terminal

    assert process.wait(timeout=60) == 0
    assert not env_file.exists()
    assert not listening(url)  # the file went with the servers it pointed at
    assert env_file.parent.is_dir()  # only the file is removed


def test_sigterm_to_the_dev_task_stops_the_sandbox_and_removes_the_file(
    tmp_path: Path, sandboxes: list[subprocess.Popen[str]]
) -> None:
    env_file = tmp_path / "sandbox.env"
    process = start([str(ROOT / "dev"), "sandbox"], env_file)
    sandboxes.append(process)
    url = settings(env_file)["SOURCES__HUBSPOT__BASE_URL"]

    process.send_signal(signal.SIGTERM)  # to ./dev alone, not its group: it must pass it on

    assert process.wait(timeout=60) == 0
    deadline = time.monotonic() + 30
    while env_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not env_file.exists()
    assert not listening(url)


def test_a_settings_file_another_sandbox_wrote_since_is_kept(
    tmp_path: Path, sandboxes: list[subprocess.Popen[str]]
) -> None:
    env_file = tmp_path / "sandbox.env"
    first = start([sys.executable, "-m", "sandbox"], env_file)
    sandboxes.append(first)
    first_settings = env_file.read_text()
    second = start([sys.executable, "-m", "sandbox"], env_file)  # a second session, same file
    sandboxes.append(second)
    second_settings = env_file.read_text()
    assert second_settings != first_settings

    os.killpg(first.pid, signal.SIGTERM)
    assert first.wait(timeout=60) == 0
    assert env_file.read_text() == second_settings  # the live sandbox's file stays

    os.killpg(second.pid, signal.SIGINT)
    assert second.wait(timeout=60) == 0
    assert not env_file.exists()


def test_a_file_edited_while_the_sandbox_runs_is_not_removed(
    tmp_path: Path, sandboxes: list[subprocess.Popen[str]]
) -> None:
    env_file = tmp_path / "sandbox.env"
    process = start([sys.executable, "-m", "sandbox"], env_file)
    sandboxes.append(process)
    mine = env_file.read_text() + "MY_OWN_SETTING='kept'\n"
    write_private(env_file, mine)

    os.killpg(process.pid, signal.SIGTERM)

    assert process.wait(timeout=60) == 0
    assert env_file.read_text() == mine
