"""What every sandbox stand-in shares: one start/stop contract, and one HTTP server base.

`StandIn` is the contract the sandbox, the fixtures and `./dev new-pipeline` rely on: `start()`
returns the stand-in (listening on a free loopback port), `stop()` is idempotent and also runs at
interpreter exit, both work as a context manager, `env()` gives the dlt settings that point a source
at it, and `simulate_activity()` changes upstream data as a working day would. PostgreSQL, moto's
AWS and every HTTP API keep it.

`HttpStandIn` serves an API with werkzeug's threaded WSGI server (`werkzeug.serving.make_server`)
and `werkzeug.wrappers.Request`/`Response`, in a background thread, so stand-ins run the same way
inside pytest, in the main job and as `python -m sandbox.<server>`. It adds what every API stand-in
needs besides its contract: queued faults (errors, 429 with `Retry-After`, slow, malformed and
dropped answers) and a log of the requests answered.

werkzeug's development server closes the connection after every answer (no keep-alive): clients
reconnect per request, which on loopback costs well under a millisecond.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from sandbox import Sandbox

HOST = "127.0.0.1"

logger = logging.getLogger(__name__)

FaultKind = Literal["error", "rate_limit", "slow", "malformed", "disconnect"]
FAULT_KINDS: tuple[FaultKind, ...] = ("error", "rate_limit", "slow", "malformed", "disconnect")


class StandIn:
    """The start/stop contract of every stand-in; subclasses implement `_start` and `_stop`.

    `start()` undoes a half-done start before it re-raises, and registers `stop()` with `atexit`,
    so an interrupted test run (KeyboardInterrupt, SIGTERM through `tests/interrupts.py`) or a
    main job ended by an exception leaves no server behind.
    """

    source: ClassVar[str] = ""
    """The dlt source section this stand-in serves (e.g. `currencies`), if one."""

    def __init__(self) -> None:
        self._lifecycle = threading.RLock()
        self._running = False

    @classmethod
    def from_sandbox(cls, sandbox: Sandbox) -> Self:
        """The stand-in as `sandbox.Sandbox` runs it (see `sandbox.standins`); `cls()` by default."""
        return cls()

    @property
    def running(self) -> bool:
        """True between a successful `start()` and `stop()`."""
        return self._running

    def start(self) -> Self:
        """Start serving (on a free loopback port unless told otherwise).

        Returns:
            The stand-in itself, so `server = Server().start()` works.

        Raises:
            RuntimeError: It is already running.
        """
        with self._lifecycle:
            if self._running:
                raise RuntimeError(f"{type(self).__name__} is already running")
            try:
                self._start()
            except BaseException:
                self._stop()
                raise
            self._running = True
            atexit.register(self.stop)
        return self

    def stop(self) -> None:
        """Stop serving and release what `start()` took. Safe to call twice, or before `start()`."""
        with self._lifecycle:
            if not self._running:
                return
            self._running = False
            try:
                self._stop()
            finally:
                atexit.unregister(self.stop)

    def _start(self) -> None:
        """Take what serving needs (a port, a process, a table); nothing by default."""

    def _stop(self) -> None:
        """Release everything `_start` took, also after a failed `_start`; nothing by default."""

    @property
    def location(self) -> str:
        """Where it serves, for people (never a secret): a URL, or what it adds to a shared server."""
        return type(self).__name__

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """Dlt settings, as environment variables, that point a source at this stand-in.

        May hold made-up sandbox secrets: pass them to a process, never print them.
        """
        return {}

    def simulate_activity(self) -> None:
        """Change some upstream data, as a working day would (nothing by default)."""


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request an HTTP stand-in answered.

    Attributes:
        method: HTTP method, e.g. `GET`.
        path: URL path without the query string, e.g. `/v1/2024-01-01..`.
        query: Raw query string, e.g. `base=USD&symbols=EUR` (empty if none).
        status: HTTP status sent; 0 when a `disconnect` fault dropped the connection instead.
        at: `time.monotonic()` when the request arrived (for intervals between requests).
        timestamp: `time.time()` when the request arrived, in seconds since the epoch.
        retry_after: The `Retry-After` seconds sent with the answer, else None.
    """

    method: str
    path: str
    query: str
    status: int
    at: float
    timestamp: float
    retry_after: float | None = None


@dataclass(slots=True)
class Fault:
    """A queued misbehaviour (see `HttpStandIn.inject_fault`)."""

    kind: FaultKind
    remaining: int
    path_prefix: str
    status: int
    retry_after: float
    delay: float


class _DroppedError(Exception):
    """The answer to a `disconnect` fault: no answer at all."""


class _QuietHandler(WSGIRequestHandler):
    # Headers and body leave in separate writes; without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK add about 40 ms to every answer.
    disable_nagle_algorithm = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log: the stand-in's request log records every request instead."""


class HttpStandIn(StandIn):
    """An HTTP API stand-in served by werkzeug on loopback, with fault injection and a request log.

    Subclasses implement `answer()` (the API's contract) and may override `gate()` (checks the
    real service makes before anything else, e.g. authentication), `error()` (the API's error body)
    and `fault_response()`.

    Args:
        host: Interface to bind; keep the loopback default.
        port: Port to bind; 0 lets the OS choose a free one.
    """

    base_path = ""
    """Appended to the root URL in `base_url`, e.g. `/v1`."""
    json_content_type = "application/json"
    request_handler: type[WSGIRequestHandler] = _QuietHandler

    def __init__(self, *, host: str = HOST, port: int = 0) -> None:
        super().__init__()
        self._host = host
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._log_lock = threading.Lock()
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []

    # -- lifecycle -------------------------------------------------------------------------------

    def _start(self) -> None:
        self._server = make_server(
            self._host, self._port, self.wsgi_app(), threaded=True, request_handler=self.request_handler
        )
        # A short poll interval keeps stop() (and so every test teardown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-sandbox",
            daemon=True,
        )
        self._thread.start()

    def _stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            if thread is not None:
                server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def port(self) -> int:
        """The bound port.

        Raises:
            RuntimeError: The stand-in is not running.
        """
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running; call start() first")
        return int(self._server.server_address[1])

    @property
    def root_url(self) -> str:
        """Scheme, host and port, e.g. `http://127.0.0.1:54321` (raises RuntimeError when stopped)."""
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API root clients are given: `root_url` plus `base_path`."""
        return self.root_url + self.base_path

    @property
    def location(self) -> str:
        """`base_url`."""
        return self.base_url

    def env(self) -> dict[str, str]:
        """`SOURCES__<SOURCE>__BASE_URL` when the stand-in serves a source."""
        return {f"SOURCES__{self.source.upper()}__BASE_URL": self.base_url} if self.source else {}

    # -- the API ---------------------------------------------------------------------------------

    def wsgi_app(self) -> WSGIApplication:
        """The WSGI application to serve: by default `answer()` behind faults and the request log."""
        return self._serve

    def answer(self, request: Request) -> Response:
        """Answer one request as the real API would."""
        raise NotImplementedError

    def gate(self, request: Request) -> Response | None:
        """An answer that comes before any fault (e.g. a 401), or None to go on."""
        return None

    def error(self, status: int, message: str) -> Response:
        """The API's error answer; by default `{"message": ...}`."""
        return self.json({"message": message}, status)

    def json(self, payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        """A compact UTF-8 JSON answer with the API's content type."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        return Response(body.encode(), status, headers, content_type=self.json_content_type)

    def fault_response(self, fault: Fault, request: Request) -> Response:
        """The answer to an `error` or `rate_limit` fault."""
        if fault.kind == "rate_limit":
            response = self.error(429, "Too Many Requests")
            # HTTP's Retry-After carries whole seconds; round up so clients never retry too early.
            response.headers["Retry-After"] = str(max(0, math.ceil(fault.retry_after)))
            return response
        try:
            phrase = HTTPStatus(fault.status).phrase
        except ValueError:
            phrase = "error"
        return self.error(fault.status, phrase)

    def _serve(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        arrived, wall = time.monotonic(), time.time()
        try:
            response = self._respond(request)
        except _DroppedError:
            self._record(request, 0, arrived, wall, None)
            # Shut the socket: werkzeug's write then fails quietly and the client gets no answer.
            environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
            return Response(b"", 500)(environ, start_response)
        except Exception:
            logger.exception("%s: failed to answer %s", type(self).__name__, request.full_path)
            response = self.error(500, "internal server error")
        retry_after = response.headers.get("Retry-After")
        self._record(
            request, response.status_code, arrived, wall, float(retry_after) if retry_after else None
        )
        # Recorded before the answer leaves: a client may read the log as soon as it has it.
        return response(environ, start_response)

    def _respond(self, request: Request) -> Response:
        gated = self.gate(request)
        if gated is not None:
            return gated
        fault = self._take_fault(request.path)
        if fault is None:
            return self.answer(request)
        if fault.kind == "slow":
            time.sleep(fault.delay)
        elif fault.kind == "disconnect":
            raise _DroppedError
        elif fault.kind in ("error", "rate_limit"):
            return self.fault_response(fault, request)
        response = self.answer(request)
        if fault.kind == "malformed":
            body = response.get_data()
            return Response(body[: len(body) // 2], 200, content_type=response.content_type)
        return response

    # -- faults ----------------------------------------------------------------------------------

    def inject_fault(
        self,
        kind: FaultKind,
        *,
        times: int = 1,
        path_prefix: str = "",
        status: int = 503,
        retry_after: float = 1.0,
        delay: float = 2.0,
    ) -> None:
        """Make the next `times` matching requests fail in the given way.

        Faults are queued and consumed in the order they were injected; each request takes at most
        one, the first whose `path_prefix` matches its path.

        Args:
            kind: `error` answers HTTP `status` with the API's error body; `rate_limit` answers 429
                with `Retry-After` (`retry_after` rounded up to whole seconds); `slow` waits `delay`
                seconds, then answers normally; `malformed` answers 200 with the normal body cut in
                half (invalid JSON); `disconnect` closes the connection without answering.
            times: How many requests it affects.
            path_prefix: Only requests whose path (without the query) starts with this.
            status: HTTP status of an `error` fault.
            retry_after: Seconds announced by a `rate_limit` fault.
            delay: Seconds a `slow` fault waits.

        Raises:
            ValueError: Unknown kind or non-positive `times`.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._log_lock:
            self._faults.append(Fault(kind, times, path_prefix, status, retry_after, delay))

    def clear_faults(self) -> None:
        """Drop every fault not consumed yet."""
        with self._log_lock:
            self._faults.clear()

    def pending_faults(self) -> int:
        """How many more requests queued faults will affect (the sum of their remaining `times`)."""
        with self._log_lock:
            return sum(fault.remaining for fault in self._faults)

    def _take_fault(self, path: str) -> Fault | None:
        with self._log_lock:
            for fault in self._faults:
                if path.startswith(fault.path_prefix):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # -- request log -----------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests answered so far, oldest first."""
        with self._log_lock:
            return list(self._requests)

    def request_count(self, path_prefix: str = "", status: int | None = None) -> int:
        """Count recorded requests by path prefix and, optionally, status.

        Args:
            path_prefix: Only count paths starting with this; empty counts everything.
            status: Only count answers with this status.

        Returns:
            The number of matching requests.
        """
        with self._log_lock:
            return sum(
                1
                for r in self._requests
                if r.path.startswith(path_prefix) and (status is None or r.status == status)
            )

    def reset_requests(self) -> None:
        """Forget the recorded requests."""
        with self._log_lock:
            self._requests.clear()

    def _record(
        self, request: Request, status: int, arrived: float, wall: float, retry_after: float | None
    ) -> None:
        query = request.query_string.decode("latin-1")
        entry = RecordedRequest(request.method, request.path, query, status, arrived, wall, retry_after)
        with self._log_lock:
            self._requests.append(entry)


def serve_until_signalled(stand_in: StandIn, announce: Callable[[Any], None] = lambda _: None) -> None:
    """Start `stand_in`, call `announce(stand_in)`, serve until SIGTERM, Ctrl-C or SIGHUP, then stop it.

    What every `python -m sandbox...` command does. The signals only set an event: raising inside
    a blocking wait can break the lock that wait holds ("release unlocked lock"). SIGHUP (its
    terminal closed) stops it too, as Python's default for it would end the process without
    stopping PostgreSQL.
    """
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    with stand_in:
        announce(stand_in)
        while not stop.wait(0.2):
            pass


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by its owner only from the start (it holds sandbox secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
