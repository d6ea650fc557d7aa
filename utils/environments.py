"""The environments - local, ci, production - and what each one means for every pipeline.

One setting picks the environment: `DLT__ENVIRONMENT` (the key `environment` under `[dlt]`, read
through dlt's configuration like `DLT__DESTINATION`). Each environment is a table in
`.dlt/config.toml`, `[environments.<name>]`, and may set:

| key | effect |
|---|---|
| `destination` | forces every pipeline into this destination (`duckdb` locally); unset: each pipeline's own (Snowflake, or the S3 landing bucket for exchange_rates) |
| `database`, `role`, `warehouse` | Snowflake session settings; they win over `destination.snowflake.credentials.*` so that an environment can never load into another one's database |
| `dataset_prefix`, `dataset_suffix` | wrapped around every dataset (Snowflake schema) name, e.g. `_PR42` for a CI branch |
| `bucket_url` | the landing bucket of filesystem pipelines (exchange_rates), so CI never writes where the production pipe reads |
| `vault_enabled`, `vault_prefix` | whether secrets come from AWS Secrets Manager, and under which prefix (see `utils.vault_provider`) |

Every key can be overridden by an environment variable named after its path, e.g.
`ENVIRONMENTS__CI__DATASET_SUFFIX=_pr42`. Precedence, highest first: `DLT__DESTINATION`, then the
environment, then the pipeline's production destination - so `DLT__DESTINATION=duckdb` works
exactly as it always has, in any environment.

With `DLT__ENVIRONMENT` unset the environment is `local` (`DEFAULT_ENVIRONMENT`): everything loads
into the local DuckDB file and the vault is off. Loading into a production destination (Snowflake,
the S3 landing bucket) takes a deliberate setting - `DLT__ENVIRONMENT=production` (the Prefect work
pool), `ci` (CI), or naming the destination itself with `DLT__DESTINATION=snowflake` - so a laptop,
a script or a test with production credentials lying around never loads into production by
accident. Where the environment says production, each pipeline's own destination
(`destination="snowflake"`) applies as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dlt

from utils.errors import ConfigurationError

ENVIRONMENT_KEY = "dlt.environment"
ENVIRONMENT_VARIABLE = "DLT__ENVIRONMENT"
ENVIRONMENTS = ("local", "ci", "production")
# What applies when DLT__ENVIRONMENT is unset: never a production destination by accident.
DEFAULT_ENVIRONMENT = "local"
SECTION = "environments"

# Snowflake session settings an environment may pin (fields of dlt's `SnowflakeCredentials`).
SNOWFLAKE_SESSION_KEYS = ("database", "role", "warehouse")


@dataclass(frozen=True)
class Environment:
    """What one environment sets; None (or empty) means "not set by the environment".

    Attributes:
        name: local, ci or production.
        destination: Destination type every pipeline is switched to, or None for each pipeline's own.
        database: Snowflake database.
        role: Snowflake role.
        warehouse: Snowflake warehouse.
        dataset_prefix: Prepended to every dataset name.
        dataset_suffix: Appended to every dataset name.
        bucket_url: Landing bucket for pipelines that load into the filesystem destination.
        vault_enabled: Whether the AWS Secrets Manager provider is on.
        vault_prefix: The prefix of this environment's secrets in AWS Secrets Manager.
    """

    name: str
    destination: str | None = None
    database: str | None = None
    role: str | None = None
    warehouse: str | None = None
    dataset_prefix: str = ""
    dataset_suffix: str = ""
    bucket_url: str | None = None
    vault_enabled: bool = False
    vault_prefix: str | None = None

    def dataset_name(self, dataset_name: str) -> str:
        """Return `dataset_name` with this environment's prefix and suffix."""
        return f"{self.dataset_prefix}{dataset_name}{self.dataset_suffix}"

    def snowflake_session(self) -> dict[str, str]:
        """The Snowflake credential fields this environment pins (database, role, warehouse)."""
        return {key: value for key in SNOWFLAKE_SESSION_KEYS if (value := getattr(self, key))}


def selected_environment_name() -> str:
    """Return the environment named by `DLT__ENVIRONMENT`, `DEFAULT_ENVIRONMENT` (local) when unset.

    Raises:
        ConfigurationError: The name is not one of `ENVIRONMENTS`.
    """
    name = (dlt.config.get(ENVIRONMENT_KEY, str) or "").strip().lower()
    if not name:
        return DEFAULT_ENVIRONMENT
    if name not in ENVIRONMENTS:
        raise ConfigurationError(
            f"{ENVIRONMENT_VARIABLE}={name!r} is not an environment of this project; use one of "
            f"{', '.join(ENVIRONMENTS)} (defined under [{SECTION}.<name>] in .dlt/config.toml)."
        )
    return name


def load_environment(name: str) -> Environment:
    """Read `[environments.<name>]` through dlt's configuration providers.

    Args:
        name: One of `ENVIRONMENTS`.

    Returns:
        The environment's settings.

    Raises:
        ConfigurationError: Its destination is not one this project loads into.
    """

    def text(key: str) -> str | None:
        value = dlt.config.get(f"{SECTION}.{name}.{key}", str)
        return value.strip() if value and value.strip() else None

    vault_enabled = dlt.config.get(f"{SECTION}.{name}.vault_enabled", bool)
    environment = Environment(
        name=name,
        destination=(text("destination") or "").lower() or None,
        database=text("database"),
        role=text("role"),
        warehouse=text("warehouse"),
        dataset_prefix=text("dataset_prefix") or "",
        dataset_suffix=text("dataset_suffix") or "",
        bucket_url=text("bucket_url"),
        vault_enabled=bool(vault_enabled),
        vault_prefix=text("vault_prefix"),
    )
    # Imported here: utils.destinations imports this module.
    from utils.destinations import KNOWN_DESTINATIONS

    if environment.destination and environment.destination not in KNOWN_DESTINATIONS:
        raise ConfigurationError(
            f"{SECTION}.{name}.destination={environment.destination!r} is not a destination this "
            f"project loads into; use one of {', '.join(KNOWN_DESTINATIONS)}, or leave it unset."
        )
    return environment


def selected_environment() -> Environment:
    """Return the environment `DLT__ENVIRONMENT` selects (`local` when it is not set)."""
    return load_environment(selected_environment_name())


def environment_is_default() -> bool:
    """Whether `DLT__ENVIRONMENT` is unset, so that `DEFAULT_ENVIRONMENT` applies."""
    return not (dlt.config.get(ENVIRONMENT_KEY, str) or "").strip()


def environment_destination() -> str | None:
    """The destination type the selected environment forces on every pipeline, if any."""
    environment = selected_environment()
    return environment.destination if environment else None


def apply_environment(destination_type: str, dataset_name: str) -> tuple[str, dict[str, Any]]:
    """What the selected environment changes in a pipeline loading into `destination_type`.

    Args:
        destination_type: The destination the pipeline loads into (already selected).
        dataset_name: The pipeline's dataset name.

    Returns:
        The dataset name with the environment's prefix and suffix, and destination options the
        environment sets (Snowflake database, role and warehouse as explicit credential fields;
        the filesystem bucket URL). Both unchanged / empty when no environment is selected.
    """
    environment = selected_environment()
    if environment is None:
        return dataset_name, {}
    options: dict[str, Any] = {}
    if destination_type == "snowflake" and environment.snowflake_session():
        # A mapping of some fields: dlt takes them as explicit values, and resolves the other
        # credential fields (host, username, private_key...) from the providers as usual.
        options["credentials"] = environment.snowflake_session()
    if destination_type == "filesystem" and environment.bucket_url:
        options["bucket_url"] = environment.bucket_url
    return environment.dataset_name(dataset_name), options
