"""A command's process: collections deferred past the imports, and an exit without the interpreter's teardown.

Each check runs in a fresh interpreter: what it changes (the collector, the exit) is the process's own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_exit_process_runs_the_exit_handlers_flushes_the_output_and_keeps_the_status() -> None:
    # stdout is a pipe here, so it is block-buffered: the line stays in the buffer until flushed.
    done = run_python(
        "import atexit, sys\n"
        "from utils import gc_settings\n"
        "atexit.register(lambda: print('exit handler ran'))\n"
        "sys.stdout.write('buffered line\\n')\n"
        "sys.stderr.write('error line\\n')\n"
        "gc_settings.exit_process(3)\n"
        "print('not reached')\n"
    )

    assert done.returncode == 3
    assert done.stdout == "buffered line\nexit handler ran\n"
    assert done.stderr == "error line\n"


def test_exit_process_waits_for_a_thread_still_running() -> None:
    # A non-daemon thread may be writing something the user needs: the process exits normally,
    # which waits for it (and the frozen objects become collectable again for that teardown).
    done = run_python(
        "import gc, threading, time\n"
        "from utils import gc_settings\n"
        "gc_settings.defer_collection()\n"
        "gc_settings.imports_loaded()\n"
        "threading.Thread(target=lambda: (time.sleep(0.5), print('thread finished'))).start()\n"
        "import atexit\n"
        "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count()))\n"
        "gc_settings.exit_process(0)\n"
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout == "thread finished\nfrozen at exit: 0\n"


def test_collections_wait_for_the_imports_and_skip_what_they_loaded() -> None:
    done = run_python(
        "import gc, json\n"
        "from utils import gc_settings\n"
        "gc_settings.defer_collection()\n"
        "during = gc.isenabled()\n"
        "import dlt\n"
        "gc_settings.imports_loaded()\n"
        "print(json.dumps([during, gc.isenabled(), gc.get_freeze_count()]))\n"
        "gc_settings.restore_collection()\n"
        "print(json.dumps([gc.isenabled(), gc.get_freeze_count()]))\n"
    )

    assert done.returncode == 0, done.stderr
    loading, after = done.stdout.splitlines()
    during, enabled, frozen = json.loads(loading)
    assert during is False and enabled is True and frozen > 10_000  # dlt's modules, frozen
    assert json.loads(after) == [True, 0]


def test_imports_loaded_leaves_a_process_that_did_not_defer_alone() -> None:
    # `python -m pipelines` calls it from `main()`, which tests and flows also call in-process.
    done = run_python(
        "import gc\n"
        "from utils import gc_settings\n"
        "gc_settings.imports_loaded()\n"
        "print(gc.isenabled(), gc.get_freeze_count())\n"
    )

    assert done.stdout == "True 0\n", done.stderr


def test_a_teardown_exit_after_freezing_prints_no_nanobind_leaks_once_restored() -> None:
    # Why `restore_collection` exists: DuckDB's bindings call every object still frozen at the
    # interpreter's teardown a leak, on stderr. The command restores before any such exit.
    leaking = run_python(
        "from utils import gc_settings\n"
        "gc_settings.defer_collection()\n"
        "import duckdb\n"
        "gc_settings.imports_loaded()\n"
        "duckdb.connect().execute('select 1').fetchall()\n"
    )
    restored = run_python(
        "from utils import gc_settings\n"
        "gc_settings.defer_collection()\n"
        "import duckdb\n"
        "gc_settings.imports_loaded()\n"
        "duckdb.connect().execute('select 1').fetchall()\n"
        "gc_settings.restore_collection()\n"
    )

    assert "nanobind: leaked" in leaking.stderr  # the trap is real
    assert restored.returncode == 0 and "nanobind" not in restored.stderr, restored.stderr
