"""A generic JSON records API on loopback: the stand-in that generated API pipelines develop against.

`./dev new-pipeline <name> api|saas|s3-snowpipe` creates a source that reads
`GET {base_url}/records?updated_since=<ISO 8601>&page=<n>&page_size=<m>`, answered with
`{"data": [...], "page": n, "next_page": n + 1 | null}` - the shape of many real APIs (page-numbered,
filterable by modification time, optionally behind a bearer token). Replace it with a stand-in that
speaks your real API's contract as soon as you know it.
"""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

from werkzeug.wrappers import Request, Response

from sandbox.base import HttpStandIn

# Seeded records are modified at fixed, whole-second instants from this epoch (deterministic).
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
MAX_PAGE_SIZE = 100


class RecordsApiServer(HttpStandIn):
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
        super().__init__(host=host, port=port)
        self.token = token
        self._lock = threading.Lock()
        self._records: dict[int, dict[str, Any]] = {}
        self._clock = EPOCH
        for _ in range(records):
            self._add()

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

    def env(self) -> dict[str, str]:
        """The base URL, and the token when there is one (a sandbox secret: never print it)."""
        token = {f"SOURCES__{self.source.upper()}__ACCESS_TOKEN": self.token} if self.token else {}
        return {**super().env(), **token}

    def simulate_activity(self) -> None:
        """New and changed records, as a working day would bring."""
        self.add_records(5)
        self.modify_records(10)

    # --- HTTP -------------------------------------------------------------------------------

    def error(self, status: int, message: str) -> Response:
        """`{"error": message}`."""
        return self.json({"error": message}, status)

    def answer(self, request: Request) -> Response:
        """`GET /records` (see the module docstring); a bearer token first when one is set."""
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            return self.error(401, "invalid or missing bearer token")
        if request.path != "/records":
            return self.error(404, "not found")
        query = parse_qs(request.query_string.decode())
        since = query.get("updated_since", [""])[0]
        try:
            page = int(query.get("page", ["1"])[0])
            size = min(int(query.get("page_size", ["50"])[0]), MAX_PAGE_SIZE)
            floor = datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
        except ValueError as exc:
            return self.error(400, f"bad query: {exc}")
        with self._lock:
            rows = sorted(self._records.values(), key=lambda r: (r["updated_at"], r["id"]))
        if floor is not None:
            rows = [
                r for r in rows if datetime.fromisoformat(r["updated_at"].replace("Z", "+00:00")) >= floor
            ]
        chunk = rows[(page - 1) * size : page * size]
        more = page * size < len(rows)
        return self.json({"data": chunk, "page": page, "next_page": page + 1 if more else None})


def new_token() -> str:
    """A made-up bearer token for a sandbox API (never a real credential)."""
    return f"sandbox-{secrets.token_hex(8)}"
