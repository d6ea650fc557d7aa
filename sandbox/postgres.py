"""A real PostgreSQL 16 server for the products pipeline (PostgreSQL -> Snowflake, merge on updated_at).

The server comes from the `pgserver` wheel's binaries, but is started and stopped here rather than
through `pgserver.PostgresServer`: that class listens on a Unix socket only (connectorx cannot use
its socket URL), shares a lock file and registry between processes and stops through `pg_ctl`, which
refuses to run as root. Here the postmaster is a direct child process, so `stop()` can wait for it.

What a started `PostgresServer` offers:

* TCP on 127.0.0.1 with a port picked by the OS, password (SCRAM) authentication only. The Unix
  socket (in the data directory, mode 0700, trust) is used for bootstrapping as superuser only.
* Database `shop`, schema `public` (dlt's and connectorx's default), two login roles with
  passwords generated per start: `shop_owner` (owns the database and its `public` schema; seeds
  and mutates) and `shop_reader` (SELECT only, sessions read-only by default; what pipelines use).
* When running as root, PostgreSQL runs as the system user `pgserver` (created if missing, the name
  the `pgserver` package itself uses), because PostgreSQL refuses to run as root.
* Settings for a disposable sandbox: fsync off, `wal_level=minimal`, server time zone UTC.

`seed_catalogue` (re)creates `categories` and `products` and fills them server-side with
deterministic, hash-based pseudo-random data; `CatalogueMutator` inserts, updates and soft-deletes
products and changes the schema (drift) the way an application and its migrations would.

`updated_at` is maintained by a `BEFORE UPDATE` trigger: it is set to `clock_timestamp()` unless the
UPDATE itself changed `updated_at`, or the session set `sandbox.freeze_updated_at = 'on'` (what
`CatalogueMutator.hard_set_updated_at` does, so a forced value always wins - even one equal to the
old value).

Run `python -m sandbox.postgres --products 100000` to serve a seeded catalogue until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self
from urllib.parse import quote

import psycopg2
import psycopg2.extras
from psycopg2 import sql

from sandbox.base import StandIn, serve_until_signalled, write_private

if TYPE_CHECKING:
    from sandbox import Sandbox

HOST = "127.0.0.1"
DATABASE = "shop"
SCHEMA = "public"
OWNER_ROLE = "shop_owner"
READER_ROLE = "shop_reader"
SUPERUSER = "postgres"
# The name `pgserver` itself uses for its non-root account, so both can share one.
SYSTEM_USER = "pgserver"

# Seeded timestamps are offsets from this fixed instant, never from now(): the same seed gives the
# same rows on every run. All seeded timestamps fall within about 13 months after it, so anything
# written later by `CatalogueMutator` (at clock_timestamp()) is newer than every seeded row.
SEED_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_EPOCH_SQL = "timestamptz '2024-01-01 00:00:00+00'"

# Set (to 'on', per transaction) to stop the trigger from touching updated_at.
FREEZE_SETTING = "sandbox.freeze_updated_at"

_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 30.0
_PORT_ATTEMPTS = 5
# sun_path holds 108 bytes; PostgreSQL appends "/.s.PGSQL.<port>" (up to 16) plus a lock suffix.
_MAX_SOCKET_DIR_LEN = 80

_SERVER_SETTINGS = {
    "listen_addresses": HOST,
    "unix_socket_permissions": "0700",
    "timezone": "UTC",
    "log_timezone": "UTC",
    # The data is disposable: durability settings only cost time when seeding millions of rows.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    # minimal WAL lets CREATE TABLE + INSERT in one transaction skip WAL entirely (seeding).
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "4GB",
    "maintenance_work_mem": "256MB",
    # JIT compilation adds a variable delay to large seeding statements for little gain here.
    "jit": "off",
    # Fewer connection slots mean less shared memory and fewer semaphores per server, as tests
    # run several servers at once.
    "max_connections": "50",
}

_account_lock = threading.Lock()


def _postgres_bin_dir() -> Path:
    # find_spec locates the wheel without importing it: importing `pgserver` builds its
    # inter-process lock and registry, which this module does not use.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the `pgserver` package is not installed; it provides the binaries")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _service_account() -> tuple[int, int] | None:
    """Return (uid, gid) to run PostgreSQL as, or None to run as the current user."""
    if os.geteuid() != 0:
        return None
    with _account_lock:
        for _ in range(5):
            try:
                entry = pwd.getpwnam(SYSTEM_USER)
                return entry.pw_uid, entry.pw_gid
            except KeyError:
                useradd = shutil.which("useradd") or "/usr/sbin/useradd"
                # A concurrent process may create the account first (or hold the passwd lock):
                # ignore the exit status and look the account up again.
                subprocess.run(  # noqa: S603 - fixed arguments, no user input
                    [useradd, "--system", "--no-create-home", "--shell", "/bin/false", SYSTEM_USER],
                    check=False,
                    capture_output=True,
                )
                time.sleep(0.05)
    raise RuntimeError(f"could not create the system user {SYSTEM_USER!r} to run PostgreSQL as")


def _make_traversable(path: Path) -> None:
    # Running as root, PostgreSQL runs as another user, who must be able to reach the data
    # directory: add "search" (o+x, not read) to each parent that lacks it, nothing more.
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _free_port() -> int:
    # PostgreSQL cannot bind port 0, so ask the OS for a free port and hand it over. Another
    # process may take it in between; `start()` then retries with a new one.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _clean_env() -> dict[str, str]:
    # PG* variables (PGDATA, PGPORT, PGHOST ...) from the caller's shell must not steer the server.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def to_libpq_url(dsn: str) -> str:
    """Return a libpq URL (`postgresql://...`) for a SQLAlchemy URL.

    psycopg2, connectorx and ADBC take `postgresql://user:password@host:port/db`; SQLAlchemy URLs  # pragma: allowlist secret
    carry a driver (`postgresql+psycopg2://`). Anything else is returned unchanged.

    Args:
        dsn: A SQLAlchemy URL, libpq URL or libpq key/value string.

    Returns:
        The same connection target as a libpq URL where the input was a URL.
    """
    scheme, separator, rest = dsn.partition("://")
    if separator and scheme.split("+", 1)[0] in ("postgresql", "postgres"):
        return f"postgresql://{rest}"
    return dsn


@contextlib.contextmanager
def _connect(dsn: str) -> Iterator[Any]:
    """Yield a psycopg2 connection; commit on success, roll back on error, always close."""
    conn = psycopg2.connect(to_libpq_url(dsn))
    try:
        with conn:
            yield conn
    finally:
        conn.close()


class PostgresServer(StandIn):
    """A PostgreSQL server on 127.0.0.1 with the `shop` database and its owner and reader roles.

    Each instance is independent (own data directory, port and passwords), so several may run at
    once. `start()` and `stop()` are thread-safe; `stop()` waits until the postmaster and all its
    children have exited and is registered with `atexit` as a safety net.

    Example:
        with PostgresServer() as server:
            seed_catalogue(server.dsn, products=1_000)
            rows = fetch_table(server.reader_dsn, "products")

    Args:
        data_dir: The PostgreSQL data directory (PGDATA); initialised when empty or missing, reused
            when it already holds a cluster, and kept on stop. When None, a temporary directory is
            used and removed on stop.
        settings: Server settings (`-c name=value`) added to, or overriding, the sandbox's own -
            e.g. `{"max_prepared_transactions": "5"}` for two-phase commit, off by default.
    """

    def __init__(self, data_dir: Path | None = None, *, settings: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self._requested_dir = data_dir
        self._extra_settings = dict(settings or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._temp_dirs: list[Path] = []
        self._pgdata: Path | None = None
        self._socket_dir: Path | None = None
        self._port: int | None = None
        self._owner_password = ""
        self._reader_password = ""

    def __repr__(self) -> str:
        # Never the DSN: it carries a password.
        return f"PostgresServer(host={HOST!r}, port={self._port}, database={DATABASE!r})"

    # -- lifecycle (the `StandIn` contract: start() undoes a half-done start, stop() is idempotent) --

    def _start(self) -> None:
        """Initialise the data directory if needed, start PostgreSQL and create roles and database.

        Raises:
            RuntimeError: PostgreSQL failed to start (the message carries the end of the server log).
        """
        account = _service_account()
        pgdata = self._prepare_data_dir(account)
        self._pgdata = pgdata
        if not (pgdata / "PG_VERSION").exists():
            self._initdb(pgdata, account)
        self._socket_dir = self._prepare_socket_dir(pgdata, account)
        self._launch(pgdata, account)
        self._bootstrap()

    def _prepare_data_dir(self, account: tuple[int, int] | None) -> Path:
        if self._requested_dir is None:
            base = Path(tempfile.mkdtemp(prefix="sandbox-pg-"))
            self._temp_dirs.append(base)
            pgdata = base / "pgdata"
            pgdata.mkdir()
        else:
            pgdata = self._requested_dir.expanduser().resolve()
            pgdata.mkdir(parents=True, exist_ok=True)
        if account is not None:
            _make_traversable(pgdata)
            os.chown(pgdata, *account)
        # PostgreSQL refuses a data directory readable by others.
        pgdata.chmod(0o700)
        return pgdata

    def _prepare_socket_dir(self, pgdata: Path, account: tuple[int, int] | None) -> Path:
        if len(str(pgdata)) <= _MAX_SOCKET_DIR_LEN:
            return pgdata
        short = Path(tempfile.mkdtemp(prefix="sbpg-"))
        self._temp_dirs.append(short)
        if account is not None:
            os.chown(short, *account)
        return short

    def _run_as(self, account: tuple[int, int] | None) -> dict[str, Any]:
        if account is None:
            return {}
        uid, gid = account
        return {"user": uid, "group": gid, "extra_groups": []}

    def _initdb(self, pgdata: Path, account: tuple[int, int] | None) -> None:
        command = [
            str(_postgres_bin_dir() / "initdb"),
            "-D",
            str(pgdata),
            "-U",
            SUPERUSER,
            "--encoding=UTF8",
            "--locale=C",
            # Local (socket) connections are trusted: the socket directory is private. Every TCP
            # connection needs a password.
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
            "--no-instructions",
        ]
        result = subprocess.run(  # noqa: S603 - absolute path to the wheel's binary, fixed args
            command,
            capture_output=True,
            text=True,
            check=False,
            cwd=pgdata,
            env=_clean_env(),
            **self._run_as(account),
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}):\n{result.stderr[-4000:]}")

    def _launch(self, pgdata: Path, account: tuple[int, int] | None) -> None:
        assert self._socket_dir is not None
        log_path = pgdata / "sandbox-postgres.log"
        for _attempt in range(_PORT_ATTEMPTS):
            port = _free_port()
            settings = {**_SERVER_SETTINGS, **self._extra_settings, "port": str(port)}
            settings["unix_socket_directories"] = str(self._socket_dir)
            command = [str(_postgres_bin_dir() / "postgres"), "-D", str(pgdata)]
            for name, value in settings.items():
                command += ["-c", f"{name}={value}"]
            log = log_path.open("ab")
            start_offset = log.tell()
            # A new session keeps a terminal's Ctrl-C away from the postmaster: the owner of this
            # object stops it in order. Its children share the session, so stray ones can be
            # found by process group if the postmaster ever has to be killed.
            process = subprocess.Popen(  # noqa: S603 - absolute path to the wheel's binary
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=pgdata,
                env=_clean_env(),
                start_new_session=True,
                **self._run_as(account),
            )
            self._process, self._log, self._port = process, log, port
            if self._wait_ready(pgdata, process):
                return
            log.close()
            self._process = self._log = self._port = None
            output = log_path.read_bytes()[start_offset:].decode("utf-8", "replace")
            if "could not bind" not in output and "Address already in use" not in output:
                raise RuntimeError(f"PostgreSQL failed to start:\n{output[-4000:]}")
        raise RuntimeError(f"PostgreSQL found no free port in {_PORT_ATTEMPTS} attempts")

    def _wait_ready(self, pgdata: Path, process: subprocess.Popen[bytes]) -> bool:
        """Wait until the postmaster reports `ready`; False if it exited first."""
        pid_file = pgdata / "postmaster.pid"
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            with contextlib.suppress(FileNotFoundError):
                lines = pid_file.read_text().splitlines()
                # Line 1 is the postmaster's pid, line 8 its status once it accepts connections.
                if len(lines) >= 8 and (lines[0].strip(), lines[7].strip()) == (str(process.pid), "ready"):
                    return True
            time.sleep(0.01)
        process.kill()
        process.wait()
        raise RuntimeError(f"PostgreSQL did not become ready within {_START_TIMEOUT_S:.0f} s")

    def _bootstrap(self) -> None:
        """Create (or re-password) the roles and the database, over the trusted socket."""
        self._owner_password = secrets.token_urlsafe(24)
        self._reader_password = secrets.token_urlsafe(24)
        admin = {"host": str(self._socket_dir), "port": self._port, "user": SUPERUSER}
        conn = psycopg2.connect(dbname="postgres", **admin)
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with conn.cursor() as cur:
                for role, password in (
                    (OWNER_ROLE, self._owner_password),
                    (READER_ROLE, self._reader_password),
                ):
                    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                    verb = "ALTER" if cur.fetchone() else "CREATE"
                    cur.execute(
                        sql.SQL(verb + " ROLE {} WITH LOGIN PASSWORD %s").format(sql.Identifier(role)),
                        (password,),
                    )
                # The products pipeline's late-commit guard reads other sessions' xact_start in
                # pg_stat_activity, which needs pg_read_all_stats (production grants it too).
                cur.execute(sql.SQL("GRANT pg_read_all_stats TO {}").format(sql.Identifier(READER_ROLE)))
                # Belt and braces besides privileges: reader sessions cannot even create temp
                # tables, as for a replica or a reporting login.
                cur.execute(
                    sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
                        sql.Identifier(READER_ROLE)
                    )
                )
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
                if not cur.fetchone():
                    cur.execute(
                        sql.SQL(
                            "CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'"
                        ).format(sql.Identifier(DATABASE), sql.Identifier(OWNER_ROLE))
                    )
                cur.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(DATABASE)))
                cur.execute(
                    sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                        sql.Identifier(DATABASE), sql.Identifier(READER_ROLE)
                    )
                )
        finally:
            conn.close()
        # In PostgreSQL 15+ `public` belongs to the database owner (shop_owner) and nobody else
        # may create in it. The reader gets SELECT on what the owner creates, now and later.
        conn = psycopg2.connect(dbname=DATABASE, **admin)
        try:
            with conn, conn.cursor() as cur:
                reader, owner = sql.Identifier(READER_ROLE), sql.Identifier(OWNER_ROLE)
                schema = sql.Identifier(SCHEMA)
                statements = [
                    "GRANT USAGE ON SCHEMA {schema} TO {reader}",
                    "GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {reader}",
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} "
                    "GRANT SELECT ON TABLES TO {reader}",
                ]
                for statement in statements:
                    cur.execute(sql.SQL(statement).format(schema=schema, reader=reader, owner=owner))
        finally:
            conn.close()

    def _stop(self) -> None:
        """Stop PostgreSQL (fast shutdown), wait for it and remove temporary directories."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                # SIGINT is PostgreSQL's "fast" shutdown: it disconnects clients, then waits for
                # every backend and auxiliary process before the postmaster exits.
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(_STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    # SIGQUIT is the "immediate" shutdown; SIGKILL if even that hangs. Said on
                    # stderr, so a slow stop on a loaded machine can be told from a hang.
                    print(
                        f"PostgreSQL did not stop within {_STOP_TIMEOUT_S:.0f} s; immediate shutdown",
                        file=sys.stderr,
                    )
                    process.send_signal(signal.SIGQUIT)
                    try:
                        process.wait(5)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
                    # The postmaster is a session and process group leader: take any
                    # children it could not wait for down with it.
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(process.pid, signal.SIGKILL)
            else:
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        for directory in self._temp_dirs:
            shutil.rmtree(directory, ignore_errors=True)
        self._temp_dirs.clear()
        self._port = None
        self._owner_password = self._reader_password = ""

    # -- connection details ------------------------------------------------------------------

    def _require_port(self) -> int:
        port = self._port
        if port is None or self._process is None:
            raise RuntimeError("server is not running; call start() first")
        return port

    @property
    def host(self) -> str:
        """The TCP host PostgreSQL listens on (always 127.0.0.1)."""
        return HOST

    @property
    def port(self) -> int:
        """The TCP port PostgreSQL listens on."""
        return self._require_port()

    @property
    def database(self) -> str:
        """The application database name (`shop`)."""
        return DATABASE

    @property
    def pid(self) -> int:
        """The postmaster's process id."""
        self._require_port()
        assert self._process is not None
        return self._process.pid

    @property
    def data_dir(self) -> Path:
        """The PostgreSQL data directory in use."""
        self._require_port()
        assert self._pgdata is not None
        return self._pgdata

    def _url(self, user: str, password: str) -> str:
        return (
            f"postgresql+psycopg2://{quote(user, safe='')}:{quote(password, safe='')}"
            f"@{HOST}:{self.port}/{DATABASE}"
        )

    @property
    def dsn(self) -> str:
        """SQLAlchemy URL for the owner role (seeding, mutations, DDL). Contains the password."""
        return self._url(OWNER_ROLE, self._owner_password)

    @property
    def reader_dsn(self) -> str:
        """SQLAlchemy URL for the read-only role, as pipelines use it. Contains the password.

        Pass it through `to_libpq_url` for connectorx, ADBC or psycopg2.
        """
        return self._url(READER_ROLE, self._reader_password)

    def set_reader_password(self, password: str) -> None:
        """Give the read-only role another password (tests of passwords holding URL metacharacters).

        Args:
            password: Any string PostgreSQL accepts; sent as a bound parameter, never interpolated.
        """
        self._require_port()
        admin = {"host": str(self._socket_dir), "port": self._port, "user": SUPERUSER}
        conn = psycopg2.connect(dbname="postgres", **admin)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(
                    sql.SQL("ALTER ROLE {} WITH PASSWORD %s").format(sql.Identifier(READER_ROLE)), (password,)
                )
        finally:
            conn.close()
        self._reader_password = password

    def set_reader_sees_all_sessions(self, enabled: bool) -> None:
        """Grant or revoke `pg_read_all_stats` for the reader role (granted at start).

        Without it the reader sees other roles' sessions in pg_stat_activity with `xact_start` NULL,
        as a production role that was never granted it would.

        Args:
            enabled: True to grant, False to revoke.
        """
        port = self._require_port()
        statement = "GRANT pg_read_all_stats TO {}" if enabled else "REVOKE pg_read_all_stats FROM {}"
        conn = psycopg2.connect(dbname="postgres", host=str(self._socket_dir), port=port, user=SUPERUSER)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql.SQL(statement).format(sql.Identifier(READER_ROLE)))
        finally:
            conn.close()

    @property
    def location(self) -> str:
        """`postgresql://127.0.0.1:<port>/shop` (no role, no password)."""
        return f"postgresql://{HOST}:{self.port}/{DATABASE}"

    def source_env(self, source: str) -> dict[str, str]:
        """Dlt settings that give the SQL source `source` the reader's credentials.

        Args:
            source: The source's config section, e.g. `products`.

        Returns:
            `SOURCES__<SOURCE>__CREDENTIALS__<KEY>` for every key of `dlt_credentials()`.
        """
        prefix = f"SOURCES__{source.upper()}__CREDENTIALS__"
        return {f"{prefix}{key.upper()}": str(value) for key, value in self.dlt_credentials().items()}

    def dlt_credentials(self) -> dict[str, str | int]:
        """Return the reader's credentials in the shape of dlt's `ConnectionStringCredentials`.

        Returns:
            drivername, host, port, username, password and database.
        """
        return {
            "drivername": "postgresql+psycopg2",
            "host": HOST,
            "port": self.port,
            "username": READER_ROLE,
            "password": self._reader_password,
            "database": DATABASE,
        }


class TablesStandIn(StandIn):
    """Tables one SQL source reads, in a `PostgresServer` that someone else starts and stops.

    `start()` creates and seeds them (`_start`); `env()` gives the source the reader's credentials.

    Args:
        server: The running server, e.g. `sandbox.Sandbox.postgres`.
    """

    tables: tuple[str, ...] = ()

    def __init__(self, server: PostgresServer) -> None:
        super().__init__()
        self.server = server

    @classmethod
    def from_sandbox(cls, sandbox: Sandbox) -> Self:
        """The tables in the sandbox's shared server."""
        return cls(sandbox.postgres)

    @property
    def location(self) -> str:
        """The server and the tables."""
        return f"{self.server.location} ({', '.join(self.tables)})"

    def env(self) -> dict[str, str]:
        """The reader role's credentials for `source` (a sandbox secret: never print them)."""
        return self.server.source_env(self.source)


# -- data ------------------------------------------------------------------------------------


def _literal(value: str) -> str:
    # Only ever applied to the constants below; standard_conforming_strings is on (default).
    return "'" + value.replace("'", "''") + "'"


def _text_array(values: Sequence[str]) -> str:
    return "(ARRAY[" + ", ".join(_literal(v) for v in values) + "]::text[])"


def _pick(values: Sequence[str], random_sql: str) -> str:
    return f"{_text_array(values)}[1 + {random_sql} % {len(values)}]"


_CATEGORY_NAMES = (
    "Küche & Haushalt",
    "Café-Zubehör",
    "Outdoor",
    "Bürobedarf",
    "Électronique",
    "Spielwaren",
    "Garten",
    "北欧 Design",
    "Bad & Wellness",
    "Geschenke 🎁",
    "Smørrebrød-Zubehör",
    "Ceramics",
)
_ADJECTIVES = (
    "Crème brûlée",
    "Ærøskøbing",
    "Smørrebrød",
    "Zürich",
    "Kraków",
    "São Paulo",
    "東京",
    "Classic",
    "Premium",
    "Öko",
    "Jalapeño",
    "L'Artisan",
    'The "Original"',
    "Nordic",
)
_NOUNS = (
    "Kaffeebecher",
    "Teapot",
    "Notizbuch",
    "弁当箱",
    "Ramen bowl",
    "Messer",
    "Tasse",
    "Lampe",
    "Kissen",
    "Plaid",
    "Schneidebrett",
    "Vase",
)
_EMOJIS = ("☕", "🚀", "🇩🇰", "👩\u200d💻", "🍜", "✨")
_DESCRIPTIONS = (
    "Dishwasher safe.",
    "Spülmaschinenfest und mikrowellengeeignet.",
    "Fait à la main à Lyon.",
    "Made in 東京.",
    'Contains "quoted" text, commas, and a back\\slash.',
    "Zweite Zeile\nmit Umbruch.",
    "Tab\tseparated\tvalues.",
    "50% off; 100 % natural.",
    "Limited edition 😀 🚀",
    "Ærøskøbing design, hand-finished.",
)
_CURRENCIES = ("EUR", "USD", "GBP", "DKK", "JPY", "CHF", "SEK")
_COLOURS = ("rot", "blue", "vert", "schwarz", "白", "turquoise")
_SIZES = ("XS", "S", "M", "L", "XL", "one size")
_MATERIALS = ("ceramic", "glaze", "oak", "stainless steel", "Baumwolle", "porcelain")
_BRANDS = ("Ærø", "Müller & Söhne", "Tōkyō Works", "Nordisk", "Acme")
_TAGS = ("sale", "neu", "éco", "日本", "gift 🎁", "with,comma", 'with "quote"', "bestseller")


def _rand(seed: int, salt: int, id_sql: str = "g") -> str:
    """SQL for a deterministic pseudo-random integer in [0, 2^31) per row id, seed and salt.

    hashint8extended is PostgreSQL's built-in seeded 64-bit hash of a bigint: cheap enough to call
    a few dozen times per row for millions of rows, and stable for a given server build.
    """
    return f"(hashint8extended({id_sql}, {seed * 1000 + salt}) & 2147483647)"


def _products_select(seed: int, categories: int, source_sql: str, *, fresh: bool) -> str:
    """SQL selecting generated product rows for the ids produced by `source_sql` (as column g).

    With `fresh`, rows are new (timestamps now, never deleted) as an application inserts them;
    otherwise they carry seeded timestamps and some are soft-deleted.
    """
    r = {k: _rand(seed, k) for k in range(1, 25)}
    randoms = ", ".join(f"{r[k]} AS r{k}" for k in range(1, 25))
    c_us = f"(({r[19]} % 31536000) * 1000000 + {r[20]} % 1000000)"
    if fresh:
        times = "clock_timestamp() AS ts"
        created, updated, deleted = "ts", "ts", "NULL::timestamptz"
        is_deleted = "false"
    else:
        # 10 % of rows were touched by one of 24 hourly bulk updates 400 days after the epoch
        # (so they share exact updated_at values), 10 % were never updated, the rest were
        # updated up to 30 days after creation. Created within the epoch's first year.
        times = (
            f"{c_us} AS c_us, CASE WHEN {r[21]} % 10 = 0"
            f" THEN (34560000 + ({r[22]} % 24) * 3600) * 1000000"
            f" WHEN {r[21]} % 10 = 1 THEN {c_us}"
            f" ELSE {c_us} + ({r[22]} % 2592000) * 1000000 + {r[24]} % 1000000 END AS u_us"
        )
        created = f"{_EPOCH_SQL} + c_us * interval '1 microsecond'"
        updated = f"{_EPOCH_SQL} + u_us * interval '1 microsecond'"
        is_deleted = "(r23 % 100 < 3)"
        deleted = f"CASE WHEN {is_deleted} THEN {updated} END"
    jpy = _CURRENCIES.index("JPY")
    attributes = f"""CASE WHEN r16 % 40 = 0 THEN NULL ELSE CASE r14 % 8
        WHEN 0 THEN jsonb_build_object(
            'colour', {_pick(_COLOURS, "r15")}, 'Size', {_pick(_SIZES, "r12")},
            'dimensions', jsonb_build_object('w', (r15 % 500) / 10.0, 'h', r15 % 40, 'unit', 'cm'),
            'materials', jsonb_build_array({_pick(_MATERIALS, "r15")}, {_pick(_MATERIALS, "r13")}))
        WHEN 1 THEN '{{}}'::jsonb
        WHEN 2 THEN jsonb_build_object(
            'bundle', '[]'::jsonb, 'warrantyYears', NULL, 'Brand', {_pick(_BRANDS, "r15")})
        WHEN 3 THEN jsonb_build_object(
            'nested', jsonb_build_object('deeper', jsonb_build_object(
                'level', 3, 'flags', '[true, false, null]'::jsonb, 'empty', '{{}}'::jsonb)),
            'mixedCase', 'lower camel', 'MixedCase', 'upper camel', 'MIXEDCASE', 'upper')
        WHEN 4 THEN jsonb_build_object(
            'variants', jsonb_build_array(
                jsonb_build_object('code', 'A', 'priceDelta', 1.50, 'stock', r15 % 9),
                jsonb_build_object('code', 'B', 'priceDelta', NULL, 'stock', 0)),
            'emoji', '☕', 'origin', '東京')
        WHEN 5 THEN '[]'::jsonb
        WHEN 6 THEN jsonb_build_object(
            'ean', 4006381333931 + r15 % 1000, 'ratings', jsonb_build_array(4.5, 3, NULL),
            'externalId', 9007199254740993, 'ratio', 0.1)
        ELSE jsonb_build_object(
            'Größe', {_pick(_SIZES, "r12")}, 'Farbe', {_pick(_COLOURS, "r15")}, 'note', NULL,
            'tags', '[]'::jsonb)
        END END"""
    tags = _text_array(_TAGS)
    # The inner query computes every random number once per row (OFFSET 0 keeps the planner from
    # flattening it and evaluating the hashes again for each use).
    return f"""
SELECT
    g AS id,
    'SKU-' || lpad(g::text, greatest(8, length(g::text)), '0') AS sku,
    {_pick(_ADJECTIVES, "r1")} || ' ' || {_pick(_NOUNS, "r2")}
        || CASE WHEN r3 % 8 = 0 THEN ' ' || {_pick(_EMOJIS, "r4")} ELSE '' END AS name,
    CASE WHEN r5 % 100 < 15 THEN NULL
         WHEN r5 % 100 < 17 THEN ''
         ELSE {_pick(_DESCRIPTIONS, "r6")}
              || CASE WHEN r6 % 3 = 0 THEN ' ' || {_pick(_DESCRIPTIONS, "r4")} ELSE '' END
    END AS description,
    1 + r7 % {categories} AS category_id,
    (CASE WHEN r8 % 1000 = 0 THEN 9999999999.99
          WHEN r8 % 1000 = 1 THEN 0
          WHEN r10 % {len(_CURRENCIES)} = {jpy} THEN (r9 % 50000 + 1)::numeric
          ELSE (r9 % 250000 + 1)::numeric / 100
     END)::numeric(12, 2) AS price,
    {_pick(_CURRENCIES, "r10")} AS currency,
    (CASE WHEN r11 % 50 = 0 THEN -1 - r12 % 5 ELSE r12 % 500 END)::integer AS stock,
    (r13 % 10 <> 0 AND NOT {is_deleted}) AS active,
    {attributes} AS attributes,
    CASE WHEN r17 % 10 = 0 THEN NULL
         WHEN r17 % 10 = 1 THEN '{{}}'::text[]
         ELSE {tags}[1 + r18 % {len(_TAGS)} : 1 + r18 % {len(_TAGS)} + r17 % 3]
    END AS tags,
    {created} AS created_at,
    {updated} AS updated_at,
    {deleted} AS deleted_at
FROM (SELECT g, {randoms}, {times} FROM {source_sql} AS g OFFSET 0) AS s
"""


_PRODUCT_COLUMNS = (
    "id, sku, name, description, category_id, price, currency, stock, active, attributes, tags, "
    "created_at, updated_at, deleted_at"
)

_DDL = f"""
DROP TABLE IF EXISTS products, categories CASCADE;
DROP FUNCTION IF EXISTS touch_updated_at() CASCADE;
CREATE TABLE categories (
    id bigint GENERATED BY DEFAULT AS IDENTITY,
    name text NOT NULL,
    parent_id bigint,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    deleted_at timestamptz
);
CREATE TABLE products (
    id bigint GENERATED BY DEFAULT AS IDENTITY,
    sku text NOT NULL,
    name text NOT NULL,
    description text,
    category_id bigint NOT NULL,
    price numeric(12, 2) NOT NULL,
    currency char(3) NOT NULL,
    stock integer NOT NULL,
    active boolean NOT NULL DEFAULT true,
    attributes jsonb,
    tags text[],
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    deleted_at timestamptz
);
CREATE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Like an application's ORM hook: every change moves updated_at, unless the UPDATE set
    -- updated_at itself or the session froze it (tests forcing exact values).
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at
       AND current_setting('{FREEZE_SETTING}', true) IS DISTINCT FROM 'on' THEN
        NEW.updated_at := clock_timestamp();
    END IF;
    RETURN NEW;
END
$$;
"""

# Keys and indexes are built after the bulk insert: one sort per index beats row-by-row upkeep.
_CONSTRAINTS = """
ALTER TABLE categories ADD PRIMARY KEY (id),
    ADD CONSTRAINT categories_parent_fk FOREIGN KEY (parent_id) REFERENCES categories (id);
ALTER TABLE products ADD PRIMARY KEY (id),
    ADD CONSTRAINT products_sku_key UNIQUE (sku),
    ADD CONSTRAINT products_category_fk FOREIGN KEY (category_id) REFERENCES categories (id);
CREATE INDEX categories_updated_at_idx ON categories (updated_at);
CREATE INDEX products_updated_at_idx ON products (updated_at);
CREATE TRIGGER categories_touch_updated_at BEFORE UPDATE ON categories
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER products_touch_updated_at BEFORE UPDATE ON products
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
SELECT setval(pg_get_serial_sequence('categories', 'id'), greatest(max(id), 1), max(id) IS NOT NULL)
    FROM categories;
SELECT setval(pg_get_serial_sequence('products', 'id'), greatest(max(id), 1), max(id) IS NOT NULL)
    FROM products;
"""


def _categories_select(seed: int, count: int) -> str:
    roots = max(1, min(8, count // 5))
    r = {k: _rand(seed, 100 + k) for k in range(1, 5)}
    names = _text_array(_CATEGORY_NAMES)
    n_names = len(_CATEGORY_NAMES)
    created = f"({r[2]} % 86400)"
    updated = f"({created} + {r[3]} % 31536000)"
    return f"""
SELECT
    g,
    {names}[1 + (g - 1) % {n_names}]
        || CASE WHEN g > {n_names} THEN ' ' || ((g - 1) / {n_names} + 1) ELSE '' END,
    CASE WHEN g <= {roots} THEN NULL ELSE 1 + {r[1]} % {roots} END,
    {_EPOCH_SQL} + {created} * interval '1 second',
    {_EPOCH_SQL} + {updated} * interval '1 second',
    CASE WHEN g > {roots} AND {r[4]} % 20 = 0 THEN {_EPOCH_SQL} + {updated} * interval '1 second' END
FROM generate_series(1, {count}) AS g
"""


def seed_catalogue(dsn: str, *, products: int, categories: int = 40, seed: int = 7) -> None:
    """(Re)create `categories` and `products` and fill them with deterministic data.

    Drops both tables first (schema drift from earlier mutations included), then generates every
    row inside PostgreSQL with `INSERT ... SELECT ... FROM generate_series(...)` and hash-based
    pseudo-randomness: one million products take a few seconds. The same `seed`, `products` and
    `categories` always give identical rows, timestamps included (they count from `SEED_EPOCH`).

    The data has the awkward parts a real catalogue has: non-ASCII and emoji names, NULL and empty
    descriptions, quotes/newlines/tabs/backslashes in text, exact two-decimal prices up to
    9999999999.99 (whole-unit prices for JPY), jsonb that is SQL NULL, `{}`, `[]` or nested, with
    null-valued and case-colliding keys ("mixedCase", "MixedCase", "MIXEDCASE") and an integer
    above 2^53 (exact in int64, not in a double), text[] tags that are NULL, empty or hold commas
    and quotes, about 3 % soft-deleted rows, and updated_at values shared by many rows (bulk
    updates).

    Args:
        dsn: Owner connection (`PostgresServer.dsn`); SQLAlchemy or libpq URL.
        products: Number of products (ids 1..products).
        categories: Number of categories (ids 1..categories, at least 1).
        seed: Varies the generated values.

    Raises:
        ValueError: A count is out of range.
    """
    if products < 0 or categories < 1:
        raise ValueError("need products >= 0 and categories >= 1")
    with _connect(dsn) as conn, conn.cursor() as cur:
        # Interval arithmetic on timestamptz can depend on the session time zone: pin it.
        cur.execute("SET LOCAL TIME ZONE 'UTC'")
        cur.execute(_DDL)
        cur.execute(
            "INSERT INTO categories (id, name, parent_id, created_at, updated_at, deleted_at) "
            + _categories_select(seed, categories)
        )
        if products:
            cur.execute(
                f"INSERT INTO products ({_PRODUCT_COLUMNS}) "
                + _products_select(seed, categories, f"generate_series(1, {int(products)})", fresh=False)
            )
        cur.execute(_CONSTRAINTS)
        # Default privileges cover tables the owner creates; this also covers seeding as another
        # role (e.g. a superuser), provided the reader role exists.
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (READER_ROLE,))
        if cur.fetchone():
            cur.execute(
                sql.SQL("GRANT SELECT ON categories, products TO {}").format(sql.Identifier(READER_ROLE))
            )
        cur.execute("ANALYZE categories; ANALYZE products")


def _table_sql(table: str) -> sql.Composable:
    # "schema.table" or "table"; each part quoted as an identifier.
    return sql.SQL(".").join(sql.Identifier(part) for part in table.split("."))


def fetch_table(dsn: str, table: str) -> list[dict[str, Any]]:
    """Return all rows of `table` ordered by id, as psycopg2 converts them.

    numeric -> Decimal, timestamptz -> aware datetime, jsonb -> dict/list, text[] -> list.

    Args:
        dsn: Any role's connection URL.
        table: Table name, optionally schema-qualified.

    Returns:
        One dict per row, keyed by column name.
    """
    with _connect(dsn) as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(sql.SQL("SELECT * FROM {} ORDER BY id").format(_table_sql(table)))
        return [dict(row) for row in cur.fetchall()]


def table_checksum(dsn: str, table: str) -> str:
    """Return "<row count>:<md5>" over every row's text form in id order (cheap equality check).

    Args:
        dsn: Any role's connection URL.
        table: Table name, optionally schema-qualified.

    Returns:
        A string that differs whenever any value or the row count differs.
    """
    query = sql.SQL(
        "SELECT count(*), md5(coalesce(string_agg(md5(t::text), '' ORDER BY t.id), '')) FROM {} t"
    ).format(_table_sql(table))
    with _connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SET LOCAL TIME ZONE 'UTC'")  # timestamptz text depends on the time zone
        cur.execute(query)
        count, digest = cur.fetchone()
    return f"{int(count)}:{digest}"


class CatalogueMutator:
    """Changes the catalogue the way the application and its migrations would.

    Every method runs in its own short transaction on a new connection, so one mutator can be
    shared between threads. Row changes go through the `updated_at` trigger, so an incremental
    extractor filtering on updated_at sees them. When given a count instead of ids, methods pick
    live (not soft-deleted) products in a pseudo-random but reproducible order.

    Args:
        dsn: Owner connection (`PostgresServer.dsn`).
        seed: Seed for the content of inserted products and for picking rows.
    """

    def __init__(self, dsn: str, *, seed: int = 7) -> None:
        self._dsn = dsn
        self._seed = seed
        self._calls = 0
        self._lock = threading.Lock()

    def _next_salt(self) -> int:
        with self._lock:
            self._calls += 1
            return self._seed * 1000 + self._calls

    def _pick_ids(self, cur: Any, n_or_ids: int | Sequence[int]) -> list[int]:
        if not isinstance(n_or_ids, int):
            return sorted({int(i) for i in n_or_ids})
        if n_or_ids < 0:
            raise ValueError("count must be >= 0")
        cur.execute(
            "SELECT id FROM products WHERE deleted_at IS NULL ORDER BY hashint8extended(id, %s), id LIMIT %s",
            (self._next_salt(), n_or_ids),
        )
        return sorted(int(row[0]) for row in cur.fetchall())

    def insert_products(self, n: int) -> list[int]:
        """Insert `n` new, live products with ids from the table's identity sequence.

        Args:
            n: How many products to insert.

        Returns:
            The new ids, ascending.
        """
        if n <= 0:
            return []
        with _connect(self._dsn) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT nextval(pg_get_serial_sequence('products', 'id')) FROM generate_series(1, %s)",
                (n,),
            )
            ids = [int(row[0]) for row in cur.fetchall()]
            cur.execute("SELECT greatest(count(*), 1) FROM categories")
            categories = int(cur.fetchone()[0])
            # The generated SQL is full of `%` (modulo): escape it for psycopg2's placeholders.
            query = f"INSERT INTO products ({_PRODUCT_COLUMNS}) " + _products_select(
                self._seed, categories, "unnest(__ids__)", fresh=True
            )
            query = query.replace("%", "%%").replace("unnest(__ids__)", "unnest(%s::bigint[])")
            cur.execute(query, (ids,))
        return ids

    def update_products(self, n_or_ids: int | Sequence[int], *, same_timestamp: bool = False) -> list[int]:
        """Change price, stock and (for object-valued attributes) a `revision` key.

        Args:
            n_or_ids: How many live products to update, or which ids.
            same_timestamp: Give all updated rows one identical updated_at (as a bulk update
                does), for cursor boundary tests. Otherwise the trigger stamps each row with its
                own clock_timestamp().

        Returns:
            The ids that were updated, ascending.
        """
        with _connect(self._dsn) as conn, conn.cursor() as cur:
            ids = self._pick_ids(cur, n_or_ids)
            if not ids:
                return []
            revision = self._next_salt()
            change = (
                "price = CASE WHEN price < 9999999999.99 THEN price + 1.00 ELSE price - 1.00 END,"
                " stock = stock + 1,"
                " attributes = CASE WHEN jsonb_typeof(attributes) = 'object'"
                " THEN attributes || jsonb_build_object('revision', %(revision)s)"
                " ELSE attributes END"
            )
            if same_timestamp:
                cur.execute("SELECT clock_timestamp()")
                stamp = cur.fetchone()[0]
                cur.execute("SELECT set_config(%s, 'on', true)", (FREEZE_SETTING,))
                change += ", updated_at = %(stamp)s"
            else:
                stamp = None
            cur.execute(
                f"UPDATE products SET {change} WHERE id = ANY(%(ids)s) RETURNING id",
                {"revision": revision, "stamp": stamp, "ids": ids},
            )
            return sorted(int(row[0]) for row in cur.fetchall())

    def soft_delete_products(self, n_or_ids: int | Sequence[int]) -> list[int]:
        """Soft-delete products: set deleted_at and active = false (the trigger bumps updated_at).

        Args:
            n_or_ids: How many live products to delete, or which ids (already deleted ones are
                left alone).

        Returns:
            The ids that were deleted now, ascending.
        """
        with _connect(self._dsn) as conn, conn.cursor() as cur:
            ids = self._pick_ids(cur, n_or_ids)
            cur.execute(
                "UPDATE products SET deleted_at = clock_timestamp(), active = false"
                " WHERE id = ANY(%s) AND deleted_at IS NULL RETURNING id",
                (ids,),
            )
            return sorted(int(row[0]) for row in cur.fetchall())

    def hard_set_updated_at(self, ids: Sequence[int], ts: datetime, *, table: str = "products") -> None:
        """Force updated_at to exactly `ts` for `ids`, bypassing the trigger.

        Args:
            ids: Row ids.
            ts: Timezone-aware timestamp (microsecond precision is kept).
            table: Table to change.

        Raises:
            ValueError: `ts` is naive (its meaning would depend on the session time zone).
        """
        if ts.tzinfo is None or ts.utcoffset() is None:
            raise ValueError("ts must be timezone-aware")
        with _connect(self._dsn) as conn, conn.cursor() as cur:
            cur.execute("SELECT set_config(%s, 'on', true)", (FREEZE_SETTING,))
            cur.execute(
                sql.SQL("UPDATE {} SET updated_at = %s WHERE id = ANY(%s)").format(_table_sql(table)),
                (ts, [int(i) for i in ids]),
            )

    def add_column(
        self,
        table: str,
        column: str,
        sql_type: str,
        fill_sql: str | None = None,
        *,
        touch_updated_at: bool = True,
    ) -> None:
        """Add a nullable column, optionally back-filled with `UPDATE ... SET column = fill_sql`.

        Args:
            table: Table to change.
            column: New column name.
            sql_type: Its SQL type, e.g. "text" or "numeric(8, 3)" (trusted SQL).
            fill_sql: SQL expression to back-fill every row with (trusted SQL), e.g. "'EU'" or
                "price * 2"; None leaves the column NULL.
            touch_updated_at: Whether the back-fill moves updated_at (the trigger fires, as for a
                migration run through the application). False freezes it, so an incremental
                extractor never sees the back-filled values on existing rows.
        """
        with _connect(self._dsn) as conn, conn.cursor() as cur:
            cur.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                    _table_sql(table), sql.Identifier(column), sql.SQL(sql_type)
                )
            )
            if fill_sql is not None:
                if not touch_updated_at:
                    cur.execute("SELECT set_config(%s, 'on', true)", (FREEZE_SETTING,))
                cur.execute(
                    sql.SQL("UPDATE {} SET {} = {}").format(
                        _table_sql(table), sql.Identifier(column), sql.SQL(fill_sql)
                    )
                )

    def alter_column_type(self, table: str, column: str, sql_type: str, using_sql: str | None = None) -> None:
        """Change a column's type in place (`ALTER TABLE ... ALTER COLUMN ... TYPE ... USING`).

        Like a real migration, this rewrites the table without firing row triggers: updated_at
        does not move, so incrementally loaded rows keep their old type downstream until they
        next change.

        Args:
            table: Table to change.
            column: Column to change.
            sql_type: New SQL type (trusted SQL), e.g. "numeric(14, 4)" or "text".
            using_sql: Conversion expression (trusted SQL), e.g. "price::text"; None uses
                PostgreSQL's implicit cast.
        """
        statement = sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {}").format(
            _table_sql(table), sql.Identifier(column), sql.SQL(sql_type)
        )
        if using_sql is not None:
            statement = statement + sql.SQL(" USING ") + sql.SQL(using_sql)
        with _connect(self._dsn) as conn, conn.cursor() as cur:
            cur.execute(statement)


# -- command line ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Start a server, seed it and serve until Ctrl-C (or SIGTERM).

    Args:
        argv: Command-line arguments (default: sys.argv[1:]).

    Returns:
        The process exit code.
    """
    parser = argparse.ArgumentParser(prog="python -m sandbox.postgres", description=main.__doc__)
    parser.add_argument("--products", type=int, default=10_000, help="products to seed")
    parser.add_argument("--categories", type=int, default=40, help="categories to seed")
    parser.add_argument("--seed", type=int, default=7, help="seed for the generated data")
    parser.add_argument("--data-dir", type=Path, default=None, help="keep the cluster here")
    parser.add_argument(
        "--credentials-file",
        type=Path,
        default=None,
        help="write the DSNs and dlt credentials (with passwords) here as JSON, mode 0600",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()

    def announce(server: PostgresServer) -> None:
        print(f"started in {time.perf_counter() - started:.2f} s", flush=True)
        seeding = time.perf_counter()
        seed_catalogue(server.dsn, products=args.products, categories=args.categories, seed=args.seed)
        print(f"seeded {args.products} products in {time.perf_counter() - seeding:.2f} s")
        print(f"host={server.host} port={server.port} database={server.database}")
        print(f"roles: {OWNER_ROLE} (owner), {READER_ROLE} (read-only); schema {SCHEMA}")
        if args.credentials_file is not None:
            payload = {
                "dsn": server.dsn,
                "reader_dsn": server.reader_dsn,
                "dlt_credentials": server.dlt_credentials(),
            }
            write_private(args.credentials_file, json.dumps(payload, indent=2))
            print(f"credentials written to {args.credentials_file}")
        print("serving; Ctrl-C to stop", flush=True)

    serve_until_signalled(PostgresServer(args.data_dir), announce)
    print("stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
