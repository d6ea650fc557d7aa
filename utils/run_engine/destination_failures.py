"""A destination that cannot be reached, opened or logged in to, named for a person.

Three failures reach a run from the database driver or the storage client rather than from dlt's
own checks, so they used to come out as a driver traceback, or as one line naming no setting, or
as dlt's generic "check if you configured the credentials at all" sentence:

* Snowflake, or the filesystem destination's storage (the S3 landing bucket), cannot be connected
  to - the account identifier or endpoint does not resolve, the network or a proxy is down: the
  connector raises its own `OperationalError` (errno 250001) or a socket error.
* A DuckDB file is locked by another process (a second run, a DuckDB CLI or notebook holding it):
  DuckDB raises `IOException: Could not set lock on file ...`.
* Snowflake refuses the login (a wrong user, password or key): the connector raises a
  `DatabaseError` with SQLSTATE 28000. No retry fixes it: a `ConfigurationError` naming the login
  keys, with Snowflake's own reason (which quotes no credential).

Any other DuckDB file dlt cannot open (a corrupt file) is named with DuckDB's own reason instead of
dlt's connection boilerplate, and keeps the engine's rule (transient, as before).

The first two are transient - the network comes back, the other process lets go - so the error
raised is a `DestinationUnavailableError`, which flows retry. The message names the settings to check (or the
file, whose path is not a secret) and never quotes a credential: only the operating system's
reason or DuckDB's lock line is kept, never the client's text around it.
"""

from __future__ import annotations

import re
import socket

import dlt
from dlt.destinations.exceptions import DestinationConnectionError

from utils.config_keys import env_names
from utils.errors import ConfigurationError, DestinationUnavailableError, PipelineError
from utils.run_engine.failures import chain

# DuckDB's lock error, e.g. `Could not set lock on file "/x/warehouse.duckdb": Conflicting lock is held
# in /usr/bin/python3.11 (PID 25816)` (duckdb 1.x).
_DUCKDB_LOCK = re.compile(r'Could not set lock on file "(?P<path>[^"]+)"')
_DUCKDB_LOCK_PID = re.compile(r"\(PID (?P<pid>\d+)\)")
# snowflake-connector-python's errno for "Failed to connect to DB" (snowflake.connector.errorcode).
_SNOWFLAKE_CONNECT_FAILED = 250001
_SNOWFLAKE_NO_BACKEND = "Could not connect to Snowflake backend"
# SQLSTATE class 28, "invalid authorization specification": a login Snowflake refused.
_INVALID_AUTHORIZATION = "28"
# The connector's "390100 (28000): Failed to connect to DB: <host>:<port>. <Snowflake's reason>".
_SNOWFLAKE_REASON = re.compile(r"Failed to connect to DB: \S+?\. (?P<reason>.+)", re.DOTALL)
_SNOWFLAKE = "destination.snowflake.credentials"

# Errors that say a network connection failed: the operating system's, and the HTTP clients' own
# wrappers around them (`requests`' and urllib3's are `OSError`s with no text of the system's).
_NETWORK_ERRORS = (ConnectionError, TimeoutError, socket.gaierror, socket.herror)
_NETWORK_LIBRARIES = ("requests", "urllib3", "snowflake", "botocore", "aiobotocore", "aiohttp")

# What to check when a destination cannot be connected to, by destination type.
CONNECTION_SETTINGS = {
    "snowflake": ["destination.snowflake.credentials.host"],
    "filesystem": ["destination.filesystem.bucket_url", "destination.filesystem.credentials.endpoint_url"],
}


def destination_failure(pipeline: dlt.Pipeline, exc: BaseException, doing: str) -> PipelineError | None:
    """The error to raise when `exc` says the destination cannot be reached, opened or logged in to.

    Args:
        pipeline: The pipeline whose destination failed.
        exc: The failure, with its chain of causes.
        doing: What the run was doing, for the message (e.g. "at the sync step").

    Returns:
        A transient `DestinationUnavailableError` naming what to check, a `ConfigurationError` for a
        refused login, or None when `exc` is something else (the caller's own rule then applies).
    """
    name = pipeline.pipeline_name
    destination = pipeline.destination.destination_type.rsplit(".", 1)[-1] if pipeline.destination else ""
    for current in chain(exc):
        text = str(current)
        lock = (
            _DUCKDB_LOCK.search(text) if type(current).__module__.startswith(("duckdb", "_duckdb")) else None
        )
        if lock is not None:
            pid = _DUCKDB_LOCK_PID.search(text)
            holder = f"process {pid['pid']}" if pid else "another process"
            return DestinationUnavailableError(
                f"Pipeline '{name}' failed {doing}: the DuckDB file '{lock['path']}' is in use by {holder} "
                "(another run, or a connection open in the DuckDB CLI, a notebook or a BI tool). Close "
                "that connection or wait for the other run to finish; this is retried, as it heals once "
                "the file is free."
            )
    opened = _connection_failed(exc)
    if opened is not None and destination == "duckdb":
        # dlt's DestinationConnectionError says "check if you configured the credentials at all ...
        # your internet connection may be down" for a local file too: DuckDB's own reason instead.
        database = getattr(pipeline.destination.config_params.get("credentials"), "database", None)
        file = f"the DuckDB file '{database}'" if isinstance(database, str) else "the DuckDB database"
        return PipelineError(
            f"Pipeline '{name}' failed {doing}: {file} cannot be opened ({opened}). If it is not this "
            "project's database, point local.duckdb_path (LOCAL__DUCKDB_PATH) or "
            "destination.duckdb.credentials at another file. Pending load packages are kept and "
            "finished by the next run."
        )
    if destination == "filesystem":
        reason = _connection_reason(exc)
        if reason is None:
            return None
        settings = CONNECTION_SETTINGS["filesystem"]
        return DestinationUnavailableError(
            f"Pipeline '{name}' failed {doing}: cannot connect to the filesystem destination's storage "
            f"({reason}). Check {' and '.join(settings)} ({env_names(settings)}) and that this machine "
            "can reach it (network, proxy, firewall). This may heal, so it is retried; pending load "
            "packages are kept and finished by the next run."
        )
    if destination != "snowflake":
        return None
    refused = snowflake_login_refused(exc, f"Pipeline '{name}' failed {doing}")
    if refused is not None:
        return refused
    return snowflake_unreachable(
        exc,
        f"Pipeline '{name}' failed {doing}",
        "This may heal, so it is retried; pending load packages are kept and finished by the next run.",
    )


def snowflake_unreachable(exc: BaseException, prefix: str, after: str) -> DestinationUnavailableError | None:
    """The error to raise when `exc` says Snowflake cannot be connected to, else None.

    Args:
        exc: The failure, with its chain of causes.
        prefix: The message's start, e.g. "Pipeline 'products' failed at the sync step".
        after: The sentence that ends the message: what happens now.

    Returns:
        A transient `DestinationUnavailableError` naming the host setting, or None.
    """
    reason = _connection_reason(exc)
    if reason is None:
        return None
    settings = CONNECTION_SETTINGS["snowflake"]
    return DestinationUnavailableError(
        f"{prefix}: cannot connect to Snowflake ({reason}). Check {', '.join(settings)} - the account "
        f"identifier, e.g. xy12345.eu-west-1 - ({env_names(settings)}) and that this machine can reach "
        f"Snowflake (network, proxy, firewall). {after}"
    )


def snowflake_login_refused(exc: BaseException, prefix: str) -> ConfigurationError | None:
    """The error to raise when `exc` says Snowflake refused the login (SQLSTATE 28000), else None.

    Args:
        exc: The failure, with its chain of causes.
        prefix: The message's start, e.g. "Pipeline 'products' failed at the sync step".

    Returns:
        A permanent `ConfigurationError` naming the login keys and Snowflake's reason, or None.
    """
    for current in chain(exc):
        if type(current).__module__.startswith("snowflake.connector") and str(
            getattr(current, "sqlstate", "") or ""
        ).startswith(_INVALID_AUTHORIZATION):
            said = _SNOWFLAKE_REASON.search(str(current))
            reason = said["reason"].strip() if said else "invalid authorization"
            keys = [f"{_SNOWFLAKE}.username", f"{_SNOWFLAKE}.private_key", f"{_SNOWFLAKE}.password"]
            return ConfigurationError(
                f"{prefix}: Snowflake refused the login ({reason[:200]}). Check {keys[0]} and its "
                f"{keys[1]} (or {keys[2]}), and that the user's public key in Snowflake matches; no "
                "retry can fix this, so it is not retried."
            )
    return None


def _connection_failed(exc: BaseException) -> str | None:
    """The driver's own reason when dlt could not open a destination connection, else None."""
    for current in chain(exc):
        if isinstance(current, DestinationConnectionError):
            inner = current.inner_exc
            text = next((line.strip() for line in str(inner).splitlines() if line.strip()), "")
            return text[:300] or type(inner).__name__
    return None


def _connection_reason(exc: BaseException) -> str | None:
    """Why a network connection failed, without any of the client's text, or None if none did.

    Only network errors count: a file the load could not read is an `OSError` too, and no
    connection setting would fix it.
    """
    reason: str | None = None
    for current in chain(exc):
        if isinstance(current, _NETWORK_ERRORS) and current.strerror:
            # The operating system's own words ("Name or service not known", "Connection refused").
            return current.strerror
        if isinstance(current, _NETWORK_ERRORS) or (
            isinstance(current, OSError) and type(current).__module__.startswith(_NETWORK_LIBRARIES)
        ):
            reason = reason or type(current).__name__  # `requests`' ConnectionError wraps the socket's
            continue
        errno = getattr(current, "errno", None)
        if type(current).__module__.startswith("snowflake.connector") and (
            errno == _SNOWFLAKE_CONNECT_FAILED and _SNOWFLAKE_NO_BACKEND in str(current)
        ):
            reason = reason or "the Snowflake backend did not answer"
    return reason
