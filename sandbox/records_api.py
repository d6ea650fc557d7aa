"""A generic JSON records API on loopback: the stand-in that generated API pipelines develop against.

`./dev new-pipeline <name> api|saas|s3-snowpipe` creates a source that reads
`GET {base_url}/records?updated_since=<ISO 8601>&page=<n>&page_size=<m>`, answered with
`{"data": [...], "page": n, "next_page": n + 1 | null}` - the shape of many real APIs (page-numbered,
filterable by modification time, optionally behind a bearer token). Replace it with a stand-in that
speaks your real API's contract as soon as you know it.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

# Seeded records are modified at fixed, whole-second instants from this epoch (deterministic).
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
MAX_PAGE_SIZE = 100


class RecordsApiServer:
    """Serves deterministic records, paginated and filterable by `updated_since`.

    Args:
        records: How many records to seed.
        token: When set, requests need `Authorization: Bearer <token>` (else 401).
        host: Interface to bind (loopback).
        port: 0 picks a free port.
    """

    def __init__(
        self, *, records: int = 250, token: str | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.token = token
        self._lock = threading.Lock()
        self._records: dict[int, dict[str, Any]] = {}
        self._clock = EPOCH
        self._faults: list[int] = []
        self.requests = 0
        for _ in range(records):
            self._add()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """Root URL of the API."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; safe to call twice."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- data -------------------------------------------------------------------------------

    def _tick(self) -> datetime:
        self._clock += timedelta(seconds=1)
        return self._clock

    def _add(self) -> dict[str, Any]:
        record_id = len(self._records) + 1
        record = {
            "id": record_id,
            "name": f"Record {record_id} - ünïcödé",
            "amount": str(Decimal(record_id * 137 % 10_000) / 100),
            "active": record_id % 7 != 0,
            "updated_at": self._tick().isoformat().replace("+00:00", "Z"),
        }
        self._records[record_id] = record
        return record

    def snapshot(self) -> dict[int, dict[str, Any]]:
        """Every record as the API serves it now, by id."""
        with self._lock:
            return {k: dict(v) for k, v in self._records.items()}

    def add_records(self, n: int) -> list[int]:
        """Create `n` new records (they get the newest modification times)."""
        with self._lock:
            return [self._add()["id"] for _ in range(n)]

    def modify_records(self, n: int) -> list[int]:
        """Change the `n` oldest-modified records (new amount, newest modification time)."""
        with self._lock:
            oldest = sorted(self._records.values(), key=lambda r: (r["updated_at"], r["id"]))[:n]
            for record in oldest:
                record["amount"] = str(Decimal(record["amount"]) + Decimal("1.01"))
                record["updated_at"] = self._tick().isoformat().replace("+00:00", "Z")
            return [r["id"] for r in oldest]

    def inject_error(self, status: int = 503, times: int = 1) -> None:
        """Answer the next `times` requests with HTTP `status`."""
        with self._lock:
            self._faults.extend([status] * times)

    # --- HTTP -------------------------------------------------------------------------------

    def _page(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        since = query.get("updated_since", [""])[0]
        try:
            page = int(query.get("page", ["1"])[0])
            size = min(int(query.get("page_size", ["50"])[0]), MAX_PAGE_SIZE)
            floor = datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
        except ValueError as exc:
            return 400, {"error": f"bad query: {exc}"}
        with self._lock:
            rows = sorted(self._records.values(), key=lambda r: (r["updated_at"], r["id"]))
        if floor is not None:
            rows = [
                r for r in rows if datetime.fromisoformat(r["updated_at"].replace("Z", "+00:00")) >= floor
            ]
        chunk = rows[(page - 1) * size : page * size]
        more = page * size < len(rows)
        return 200, {"data": chunk, "page": page, "next_page": page + 1 if more else None}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                with api._lock:
                    api.requests += 1
                    fault = api._faults.pop(0) if api._faults else None
                if fault is not None:
                    self._send(fault, {"error": "injected fault"})
                elif api.token is not None and self.headers.get("Authorization") != f"Bearer {api.token}":
                    self._send(401, {"error": "invalid or missing bearer token"})
                elif url.path != "/records":
                    self._send(404, {"error": "not found"})
                else:
                    self._send(*api._page(parse_qs(url.query)))

            def _send(self, status: int, payload: object) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: tests and the main job print their own summaries

        return Handler


def new_token() -> str:
    """A made-up bearer token for a sandbox API (never a real credential)."""
    return f"sandbox-{secrets.token_hex(8)}"


def records_in(rows: Iterator[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Rows by id (helper for tests comparing a destination with `snapshot()`)."""
    return {int(r["id"]): r for r in rows}
