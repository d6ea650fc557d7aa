"""Credential specs that make dlt itself name every missing key, in the check and the run alike.

dlt's `ConnectionStringCredentials` requires only `drivername`: with the rest half-set (a host and
no user, say) it resolves, and a source fails later trying to connect to `None:None/None as None`.
`SqlDatabaseCredentials` declares every key a database connection needs as required, so dlt raises
`ConfigFieldMissingException` naming the missing ones when it injects the credentials - in
`./dev check-config` (which resolves each source's spec) and at the start of a run (`run_pipeline`
turns that exception into a `ConfigurationError` listing the keys) by the same code path. Both forms
dlt documents are accepted: one connection-string URL (`sources.products.credentials =
"postgresql://reader:...@host:5432/shop"`, the password URL-encoded) or separate keys.
"""

from __future__ import annotations

from dlt.common.configuration import configspec
from dlt.common.configuration.specs import ConnectionStringCredentials
from dlt.common.typing import TSecretStrValue

DEFAULT_POSTGRES_PORT = 5432


@configspec(init=False)
class SqlDatabaseCredentials(ConnectionStringCredentials):
    """A database connection with every key it needs required (host, database, username, password).

    `drivername` defaults to `postgresql` and `port` to 5432, so neither has to be set.
    """

    drivername: str = "postgresql"
    database: str = None  # type: ignore[assignment]  # dlt: required, unset until resolved
    username: str = None  # type: ignore[assignment]
    password: TSecretStrValue = None  # type: ignore[assignment]
    host: str = None  # type: ignore[assignment]
    port: int = DEFAULT_POSTGRES_PORT
