"""Values in what `./dev new-pipeline` generates: numbers exact or refused naming the column, never
rounded; text with every character.

A pipeline of the HTTP patterns is generated into a copy of the repository and run there (in a
subprocess: its modules live in the copy) against a loopback API answering the JSON this test
writes, numbers as JSON numbers or strings, into DuckDB.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.tools.test_new_pipeline import copy_repository
from tools.new_pipeline.__main__ import generate

# Runs in the copy: serves each body in turn as page 1 of GET /records (later pages are empty), runs
# the pipeline (or iterates the source alone, for the S3 pattern) and prints one JSON line per body.
SCRIPT = r"""
import json, os, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import duckdb

from utils.errors import PipelineError, PermanentPipelineError, find_cause

BODY = {"current": b""}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        first = "page=1&" in self.path + "&"
        body = BODY["current"] if first else b'{"data": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}"
os.environ["SOURCES__LEDGER__BASE_URL"] = url
os.environ["SOURCES__LAKE__BASE_URL"] = url
from pipelines import ledger
from sources.lake import lake_source

for case in json.loads(sys.argv[1]):
    BODY["current"] = case["body"].encode()
    error = rows = None
    try:
        if case["target"] == "ledger":
            ledger.run()
            with duckdb.connect(os.environ["LOCAL__DUCKDB_PATH"], read_only=True) as con:
                rows = [
                    [r[0], str(r[1]), r[2], repr(r[3]) if r[3] is not None else None, r[4], r[5]]
                    for r in con.sql(
                        "select id, amount, typeof(amount), fee, typeof(fee), name from ledger.records order by id"
                    ).fetchall()
                ]
        else:
            rows = [[r["id"], str(r["amount"])] for r in lake_source().records]
    except BaseException as exc:
        ours = find_cause(exc, PipelineError)
        error = {
            "type": type(ours or exc).__name__,
            "permanent": isinstance(ours, PermanentPipelineError),
            "message": str(ours or exc),
        }
    print("RESULT " + json.dumps({"error": error, "rows": rows}), flush=True)
"""


def _record(record_id: int, amount: str, fee: str = "0.5", name: str = "") -> str:
    # Raw JSON text: numbers exactly as an API would write them, more digits than a double included.
    return (
        f'{{"id": {record_id}, "name": "{name or f"r{record_id}"}", "amount": {amount}, "fee": {fee}, '
        f'"active": true, "updated_at": "2025-01-01T00:00:{record_id:02d}Z"}}'
    )


def _body(*records: str) -> str:
    return '{"data": [' + ", ".join(records) + '], "page": 1, "next_page": null}'


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository copy with an `api` pipeline (`ledger`) and an `s3-snowpipe` one (`lake`)."""
    repo = copy_repository(tmp_path_factory.mktemp("numbers"))
    generate("ledger", "api", repo)
    generate("lake", "s3-snowpipe", repo)
    return repo


def _run(repo: Path, cases: list[dict[str, str]]) -> list[dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(cases)],
        cwd=repo,
        env={**__import__("os").environ, "PYTHONPATH": str(repo)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    found = [json.loads(line[7:]) for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(found) == len(cases), result.stdout[-3000:] + result.stderr[-3000:]
    return found


# Each value would be changed on its way to the warehouse: rounded to the column's scale, by a
# double, or (too wide) rejected by the destination with a message that names no column.
REFUSED = {
    "three decimals into DECIMAL(12,2)": ("amount", _record(1, "1.005")),
    "a string with three decimals": ("amount", _record(2, '"2.675"')),
    "more digits than a double holds": ("amount", _record(3, "0.1000000000000000055511151231257827")),
    "too wide for the column": ("amount", _record(4, "12345678901234.5")),
    "an undeclared number a double would change": (
        "fee",
        _record(5, "1.5", fee="0.1000000000000000055511151231257827"),
    ),
    "a nested undeclared number a double would change": (
        "fee__net",
        _record(6, "1.5", fee='{"net": 12345678.123456789012345}'),
    ),
}


def test_numbers_are_exact_or_the_run_is_refused_naming_the_column(generated: Path) -> None:
    exact = _body(
        _record(11, "12.5", fee="0.1"),
        _record(12, "9999999999.99", fee="1e-7"),
        _record(13, '"0.10"', fee="3"),
        _record(14, "-1234567890.12", fee="2.5E+3"),
    )
    cases = [{"target": "ledger", "body": _body(record)} for _, record in REFUSED.values()]
    cases.append({"target": "ledger", "body": exact})
    results = _run(generated, cases)
    for (label, (column, _)), result in zip(REFUSED.items(), results, strict=False):
        error = result["error"]
        assert error is not None, f"{label}: loaded {result['rows']}"
        assert error["type"] == "MalformedPayloadError" and error["permanent"], (label, error)
        assert error["message"].startswith(f"ledger: records.{column} of the record with id "), (label, error)
        assert "nothing was loaded" in error["message"], error
        assert "DECIMAL_COLUMNS in sources/ledger/settings.py" in error["message"], error
    # Nothing of the refused runs reached the warehouse; the exact values arrive digit for digit.
    loaded = results[-1]
    assert loaded["error"] is None, loaded["error"]
    assert [(r[0], Decimal(r[1]), r[2]) for r in loaded["rows"]] == [
        (11, Decimal("12.5"), "DECIMAL(12,2)"),
        (12, Decimal("9999999999.99"), "DECIMAL(12,2)"),
        (13, Decimal("0.10"), "DECIMAL(12,2)"),
        (14, Decimal("-1234567890.12"), "DECIMAL(12,2)"),
    ]
    assert [(r[3], r[4]) for r in loaded["rows"]] == [
        ("0.1", "DOUBLE"),
        ("1e-07", "DOUBLE"),
        ("3.0", "DOUBLE"),  # the column is a double from its first value on
        ("2500.0", "DOUBLE"),
    ]


def test_the_s3_pattern_source_refuses_the_same_way(generated: Path) -> None:
    results = _run(
        generated,
        [
            {"target": "lake", "body": _body(_record(1, "1.005"))},
            {"target": "lake", "body": _body(_record(2, "0.07"))},
        ],
    )
    assert results[0]["error"]["type"] == "MalformedPayloadError", results[0]
    assert results[0]["error"]["message"].startswith("lake: records.amount of the record with id 1 is 1.005")
    assert results[1] == {"error": None, "rows": [[2, "0.07"]]}


def test_text_keeps_every_character_nul_included(generated: Path) -> None:
    # JSON may carry U+0000 in a string; dlt's INSERT writer for DuckDB used to drop it (a NUL b -> ab).
    escaped = r"a\u0000b \ud83d\ude00 \"q\""  # JSON escapes, as the API would send them
    (result,) = _run(generated, [{"target": "ledger", "body": _body(_record(1, "1.5", name=escaped))}])
    assert result["error"] is None, result["error"]
    assert [row[5] for row in result["rows"]] == ['a\x00b \U0001f600 "q"']
