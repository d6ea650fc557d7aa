"""`python -m pipelines <name>`: one pipeline from the command line, failures in one line (issue 12.3)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import duckdb

from pipelines.__main__ import names
from sandbox.frankfurter import FrankfurterServer

ROOT = Path(__file__).resolve().parents[2]


def run_command(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_every_pipeline_module_is_a_choice() -> None:
    assert {"currencies", "exchange_rates", "hubspot", "products"} <= set(names())
    assert not [name for name in names() if name.startswith("_")]


def test_a_run_loads_and_prints_the_report(frankfurter: FrankfurterServer, warehouse: Path) -> None:
    result = run_command("currencies", env={"SOURCES__CURRENCIES__BASE_URL": frankfurter.base_url})

    assert result.returncode == 0, result.stderr[-2000:]
    assert f"currencies: {len(frankfurter.currencies)} rows into duckdb" in result.stdout
    # Issue 12.2: no "nanobind: leaked ..." lines at exit (a DuckDB object alive at interpreter exit
    # while a daemon thread runs prints them; the run engine leaves none behind).
    assert "nanobind" not in result.stderr
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from currencies.currencies").fetchone() == (
            len(frankfurter.currencies),
        )


# The command run as `python -m pipelines` does, with every collection the process makes said on
# stderr, and the collector's state when the exit handlers run.
COUNTING_COLLECTIONS = """
import atexit, gc, runpy, sys
def said(phase, info):
    if phase == "start":
        sys.stderr.write(f"collecting generation {info['generation']}\\n")
gc.callbacks.append(said)
atexit.register(lambda: sys.stderr.write(f"at exit: collector on {gc.isenabled()}, frozen {gc.get_freeze_count() > 0}\\n"))
sys.argv = ["pipelines", *sys.argv[1:]]
runpy.run_module("pipelines", run_name="__main__", alter_sys=True)
"""


def test_a_run_as_a_command_never_walks_every_object_and_leaves_its_files_complete(
    frankfurter: FrankfurterServer, warehouse: Path
) -> None:
    # Issue 14 (a process's fixed cost): no collection while the modules load, the loaded modules
    # frozen out of later collections once the run engine has built the pipeline and its source,
    # and no teardown at exit (utils/gc_settings.py) - so no collection of the oldest generation
    # at all, where a normal exit ends with one over every object; the run's own allocations are
    # collected as usual. What a user needs is all there: the report, the exit status, a closed database
    # (DuckDB checkpoints it when the last connection closes, leaving no write-ahead log), dlt's
    # working directory (the next run finds nothing left pending), and no nanobind lines.
    env = {**os.environ, "SOURCES__CURRENCIES__BASE_URL": frankfurter.base_url}
    command = [sys.executable, "-c", COUNTING_COLLECTIONS, "currencies"]

    first = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )

    assert first.returncode == 0, first.stderr[-2000:]
    assert f"currencies: {len(frankfurter.currencies)} rows into duckdb" in first.stdout
    assert "collecting generation 2" not in first.stderr
    assert "at exit: collector on True, frozen True" in first.stderr  # collecting resumed for the run
    assert "nanobind" not in first.stderr
    assert not warehouse.with_name(f"{warehouse.name}.wal").exists()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from currencies.currencies").fetchone() == (
            len(frankfurter.currencies),
        )
    again = run_command("currencies", env={"SOURCES__CURRENCIES__BASE_URL": frankfurter.base_url})
    assert again.returncode == 0, again.stderr[-2000:]
    assert "left by an earlier try" not in again.stdout
    assert f"currencies: {len(frankfurter.currencies)} rows into duckdb" in again.stdout


def test_a_refused_connection_is_one_line_first_and_the_traceback_only_with_debug() -> None:
    env = {"SOURCES__CURRENCIES__BASE_URL": "http://127.0.0.1:9/v1"}

    result = run_command("currencies", env=env)

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.strip() and not _nanobind(line)]
    assert errors[0].startswith("currencies failed: currencies: 127.0.0.1:9 refused the connection")
    assert "sources.currencies.base_url" in errors[0]
    assert "Traceback" not in result.stderr
    debug = run_command("currencies", "--debug", env=env)
    assert debug.returncode == 1 and "Traceback" in debug.stdout + debug.stderr


def test_an_unreachable_snowflake_is_one_line_without_the_connectors_own_logging() -> None:
    password = f"pw-{os.urandom(8).hex()}"  # made up; must never be shown
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    credentials = "DESTINATION__SNOWFLAKE__CREDENTIALS__"
    env = {
        "DLT__DESTINATION": "snowflake",
        f"{credentials}HOST": "xy12345.eu-west-1",
        f"{credentials}DATABASE": "RAW",
        f"{credentials}USERNAME": "SVC_DLT",
        f"{credentials}PASSWORD": password,
        f"{credentials}QUERY": f'{{"host": "127.0.0.1", "port": {port}, "protocol": "http", "login_timeout": 5}}',
    }

    result = run_command("currencies", env=env)

    assert result.returncode == 1
    lines = [
        line for line in (result.stdout + result.stderr).splitlines() if line.strip() and not _nanobind(line)
    ]
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        "currencies failed: Pipeline 'currencies' failed at the sync step: cannot connect"
    )
    assert "destination.snowflake.credentials.host" in lines[0]
    assert password not in result.stdout + result.stderr


def _nanobind(line: str) -> bool:
    return "nanobind" in line or "leaked" in line or line.startswith(" - ")


def test_a_malformed_secrets_file_is_named_without_any_of_its_text(tmp_path: Path) -> None:
    # dlt's own error quotes the character where TOML parsing stopped: here a character of the token.
    token = f"pat-na1-{os.urandom(8).hex()}"
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text((ROOT / ".dlt" / "config.toml").read_text())
    (tmp_path / ".dlt" / "secrets.toml").write_text(f"[sources.hubspot]\naccess_token = {token}\n")

    result = run_command("currencies", env={"DLT_PROJECT_DIR": str(tmp_path)})

    assert result.returncode == 1
    assert "secrets.toml is not valid TOML: line 2, column 16" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "Unexpected character" not in result.stdout + result.stderr
    assert token not in result.stdout + result.stderr
    assert f"'{token[0]}'" not in result.stdout + result.stderr
