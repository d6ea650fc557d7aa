"""Connecting to a PostgreSQL source: credentials checked, errors sorted, and no secret in any message.

Used by every SQL source (products, and what `./dev new-pipeline <name> sql` generates), so a wrong
password means the same thing everywhere: a permanent `ConfigurationError` naming the setting, never
a retry.

Why messages are built from parsed parts only: a password that is not URL-encoded inside a one-line
URL (`postgresql://loader:P@ss#x@db:5432/shop`) is split by the URL parser at its first `@`, so the
"host" and "database" dlt hands us hold the rest of the password. Printing them - or the driver's
own message, which quotes the host - would put part of the secret into the exception, the Prefect
state message and the failure alert. So every part is validated before it is used, a part that does
not look like what it claims to be is a permanent error naming the key (never its value), and the
driver's error text is reduced to a fixed phrase from `_KNOWN_FAILURES`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from dlt.common.configuration.specs import ConnectionStringCredentials

from utils.config_keys import env_names, listing
from utils.errors import ConfigurationError, UpstreamUnavailableError, UpstreamUnreachableError

if TYPE_CHECKING:  # SQLAlchemy is imported by `connect_postgres` only: HTTP pipelines never load it
    import sqlalchemy as sa

# A DNS name (RFC 1123 labels) - what a host must look like unless it is an IP address or a socket dir.
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
# Characters a database name parsed out of a URL holds only when the URL was split in the wrong place.
_URL_METACHARACTERS = frozenset("@/?#:% \t\n\"'\\&=")

ENCODE_HINT = (
    "If the credentials are one URL, the password must be URL-encoded in it "
    "(`@` as %40, `#` as %23, `/` as %2F, `:` as %3A, `?` as %3F, `%` as %25, a space as %20); "
    "or give host, port, database, username and password as separate keys."
)

# How a failed first connection is classed: a setting to fix (ConfigurationError), a host that cannot
# be connected to at all - refused, unresolvable, TLS (UpstreamUnreachableError: permanent, so the run
# fails in seconds naming the setting, as the HTTP sources do) - or a server that may answer later
# (UpstreamUnavailableError: retried).
Failure = Literal["configuration", "unreachable", "transient"]

# libpq / psycopg2 failure texts, sorted: (marker in the driver's message, what we say, class).
# The driver's text itself never reaches a message: it quotes the host, which is only safe once
# validated, and a future libpq could quote more.
_KNOWN_FAILURES: tuple[tuple[str, str, Failure], ...] = (
    ("password authentication failed", "the password was rejected", "configuration"),
    ("no password supplied", "no password was given", "configuration"),
    ("role", "the role does not exist or may not log in", "configuration"),
    ("database", "the database does not exist or may not be used by this role", "configuration"),
    (
        "no pg_hba.conf entry",
        "the server's pg_hba.conf does not admit this host, role or database",
        "configuration",
    ),
    ("ssl", "TLS negotiation failed", "unreachable"),
    ("certificate", "TLS certificate verification failed", "unreachable"),
    ("could not translate host name", "the host name does not resolve", "unreachable"),
    ("name or service not known", "the host name does not resolve", "unreachable"),
    (
        "connection refused",
        "the connection was refused (is the server up, and listening on that port?)",
        "unreachable",
    ),
    ("timeout expired", "the connection timed out", "transient"),
    ("timed out", "the connection timed out", "transient"),
    ("the database system is starting up", "the server is starting up", "transient"),
    ("the database system is shutting down", "the server is shutting down", "transient"),
    ("too many connections", "the server has too many connections", "transient"),
    ("server closed the connection unexpectedly", "the server closed the connection", "transient"),
    ("no route to host", "there is no route to the host", "transient"),
    ("network is unreachable", "the network is unreachable", "transient"),
)


@dataclass(frozen=True)
class ConnectionTarget:
    """The non-secret parts of a PostgreSQL connection, validated: safe to put in any message."""

    host: str
    port: int
    database: str
    username: str

    def __str__(self) -> str:
        return f"{self.host}:{self.port}/{self.database} as {self.username}"


def refuse_ambiguous_url(value: object, key: str) -> None:
    """Refuse a credentials URL whose password (or user) was not URL-encoded, before anything parses it.

    A URL parser splits `user:pass@host/db` at the first `@`, `/`, `?` or `#` it meets, so those
    characters left raw in a password move the rest of it into the host, database or query - which
    other settings may then override, hiding the damage until a connection error quotes the host.
    Telling tell-tale: an `@` after the authority part (legal in a path, but never in these URLs) or
    more than one `@` in it.

    Args:
        value: The raw setting (a string when the credentials were given as one URL; anything else
            is left alone).
        key: The setting's full key, named in the error.

    Raises:
        ConfigurationError: The URL is ambiguous; names the key, never a part of the value.
    """
    if not isinstance(value, str) or "://" not in value:
        return
    rest = value.split("://", 1)[1]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, after = rest[:end], rest[end:]
    if authority.count("@") > 1 or "@" in after:
        raise ConfigurationError(f"`{key}` does not parse as a URL. {ENCODE_HINT}")


def connection_target(credentials: ConnectionStringCredentials, key: str) -> ConnectionTarget:
    """Validate the credentials' parts and return the ones that may be shown.

    Args:
        credentials: The resolved dlt credentials (one URL or separate keys - dlt parses both).
        key: The setting's full key, e.g. `sources.products.credentials`, named in errors.

    Returns:
        Host, port, database and user, each checked to be what it claims to be.

    Raises:
        ConfigurationError: A part is missing, or does not parse (the usual cause being a password that
            is not URL-encoded inside a URL). The message names the keys, never a value.
    """
    missing = [
        f"{key}.{name}"
        for name, value in (
            ("host", credentials.host),
            ("database", credentials.database),
            ("username", credentials.username),
            ("password", credentials.password),
        )
        if value in (None, "")
    ]
    if missing:
        one = len(missing) == 1
        raise ConfigurationError(
            f"`{key}` is incomplete: missing {listing(missing)}. Set {'it' if one else 'them'} in "
            f".dlt/secrets.toml, the vault or {'the environment variable' if one else 'the environment variables'} "
            f"{listing([env_names([name]) for name in missing])}, or give the whole connection as one URL."
        )
    host = str(credentials.host)
    database = str(credentials.database)
    if not _is_host(host) or any(c in _URL_METACHARACTERS for c in database):
        raise ConfigurationError(f"`{key}`: the host or database does not parse. {ENCODE_HINT}")
    port = _port(credentials.port)
    if port is None:
        raise ConfigurationError(f"`{key}.port` must be a number from 1 to 65535. {ENCODE_HINT}")
    return ConnectionTarget(host=host, port=port, database=database, username=str(credentials.username))


def connect_postgres(
    credentials: ConnectionStringCredentials,
    *,
    key: str,
    pipeline: str,
    application_name: str,
    connect_timeout_seconds: int,
) -> sa.Engine:
    """Create an engine for a PostgreSQL source and prove the database answers.

    Args:
        credentials: The resolved dlt credentials.
        key: The setting's full key (e.g. `sources.products.credentials`), named in errors.
        pipeline: The pipeline's name, named in errors.
        application_name: Shown in `pg_stat_activity`, so a DBA can tell our sessions apart.
        connect_timeout_seconds: How long to wait for the server to accept a connection.

    Returns:
        A SQLAlchemy engine whose pool checks connections before use.

    Raises:
        ConfigurationError: The credentials are incomplete, do not parse, or were refused for good
            (wrong password, unknown database or role, pg_hba).
        UpstreamUnreachableError: The connection was refused, the host does not resolve or TLS
            failed, on this first connection: permanent, so the run fails in seconds.
        UpstreamUnavailableError: The server timed out, is starting up or shutting down, or has
            too many connections; worth retrying later.
    """
    import sqlalchemy as sa  # about 0.3 s to import; only SQL sources come here

    target = connection_target(credentials, key)
    # Built from the validated parts, with the password passed as a value (SQLAlchemy quotes it),
    # never by re-parsing a rendered string.
    url = sa.URL.create(
        drivername=_driver(credentials.drivername),
        username=target.username,
        password=str(credentials.password),
        host=target.host,
        port=target.port,
        database=target.database,
        query=_query(credentials),
    )
    engine: sa.Engine = sa.create_engine(
        url,
        connect_args={"connect_timeout": connect_timeout_seconds, "application_name": application_name},
        pool_pre_ping=True,
    )
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.DBAPIError as exc:
        engine.dispose()
        reason, failure = describe_failure(exc)
        if failure == "configuration":
            raise ConfigurationError(
                f"{pipeline}: PostgreSQL at {target} refused the connection: {reason}. Check `{key}`."
            ) from None
        if failure == "unreachable":
            raise UpstreamUnreachableError(
                f"{pipeline}: cannot connect to PostgreSQL at {target}: {reason}. Check `{key}` and that "
                "the server runs and is reachable from here; nothing was loaded."
            ) from None
        raise UpstreamUnavailableError(
            f"{pipeline}: cannot reach PostgreSQL at {target}: {reason}. Is the server up and reachable "
            f"from here? Check `{key}`."
        ) from None
    return engine


def describe_failure(exc: BaseException) -> tuple[str, Failure]:
    """Sort a driver error into a fixed, secret-free phrase and its class.

    Args:
        exc: A SQLAlchemy `DBAPIError` or the driver's own exception.

    Returns:
        The phrase and the class (see `Failure`). Unknown failures are transient, named by the
        driver error's class and SQLSTATE only.
    """
    original = getattr(exc, "orig", None) or exc
    text = str(original).lower()
    # "FATAL:  role "x" does not exist" and "database "x" does not exist" both mention "does not exist".
    for marker, phrase, failure in _KNOWN_FAILURES:
        if marker in text and (marker not in ("role", "database") or "does not exist" in text):
            return phrase, failure
    code = getattr(original, "pgcode", None)
    return f"{type(original).__name__}{f' (SQLSTATE {code})' if code else ''}", "transient"


def _is_host(host: str) -> bool:
    if host.startswith("/"):  # a Unix socket directory
        return not any(c in _URL_METACHARACTERS - {"/"} for c in host)
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return bool(_HOSTNAME.match(host))
    return True


def _port(value: Any) -> int | None:
    if value in (None, ""):
        return 5432
    try:
        port = int(value)
    except (TypeError, ValueError):
        return None
    return port if 0 < port < 65536 else None


def _driver(drivername: str | None) -> str:
    # dlt's docs write `postgresql://...`; SQLAlchemy 2.1 maps a bare `postgresql` to psycopg 3,
    # which this project does not install, so the bare name means the driver we ship.
    return "postgresql+psycopg2" if drivername in (None, "", "postgresql", "postgres") else drivername


def _query(credentials: ConnectionStringCredentials) -> dict[str, str]:
    query = credentials.query or {}
    return {str(k): str(v) for k, v in query.items()}
