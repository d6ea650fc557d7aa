"""One place that decides where a pipeline loads.

Every module in `pipelines/` builds its `dlt.Pipeline` with `make_pipeline` and runs it through
the run engine (`utils.run_engine.run_pipeline`), so the rules below hold for all of them:

* The production destination is named by the pipeline (Snowflake for most). `DLT__DESTINATION`
  (or `destination` under `[dlt]` in `.dlt/config.toml`) overrides it, e.g. `DLT__DESTINATION=duckdb`
  for a laptop. dlt itself ignores that variable, hence this module.
* DuckDB loads into dlt's `destination.duckdb.credentials` when set, else into the project's
  default file (`local.duckdb_path`, `.local/warehouse.duckdb`).
* Replaced tables are swapped in atomically (`insert-from-staging`), so reference data is never seen
  half-loaded and a failed replace leaves the previous table intact.
* Destination settings are resolved before any data is extracted: missing credentials fail fast with
  the keys to set, instead of after a long extract.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
from dlt.common.configuration.exceptions import (
    ConfigFieldMissingException,
    ConfigurationValueError,
    InvalidNativeValue,
    LookupTraces,
)
from dlt.common.configuration.utils import get_resolved_traces
from dlt.common.destination import Destination
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from utils.config_keys import env_names, listing, missing_keys, placeholders_refused
from utils.environments import apply_environment, environment_destination
from utils.errors import ConfigurationError
from utils.errors import find_cause as find_cause  # re-exported: sources' tests import it from here
from utils.sql_connection import ENCODE_HINT, refuse_ambiguous_url
from utils.vault_provider import describe_missing, register_vault_provider

PRODUCTION_DESTINATION = "snowflake"

# Destinations a pipeline may be switched to with DLT__DESTINATION. Kept short on purpose: each one
# here is tested (DuckDB locally, Snowflake in production, the filesystem for the S3 landing zone).
KNOWN_DESTINATIONS = ("duckdb", "snowflake", "filesystem")

SQL_DESTINATIONS = ("duckdb", "snowflake")

# `insert-from-staging` loads the new rows into a staging dataset and then swaps them in with one
# DELETE + INSERT; dlt's default `truncate-and-insert` empties the table before loading.
REPLACE_STRATEGY = "insert-from-staging"

_OVERRIDE_KEY = "dlt.destination"
_DUCKDB_PATH_KEY = "local.duckdb_path"
DEFAULT_DUCKDB_PATH = ".local/warehouse.duckdb"
_DUCKDB_MEMORY_KEY = "local.duckdb_memory_limit"
DEFAULT_DUCKDB_MEMORY_LIMIT = "512MB"

# What a Snowflake account identifier (`orgname-account`, `xy12345.eu-west-1.aws`) is made of.
_SNOWFLAKE_ACCOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def selected_destination(production_destination: str = PRODUCTION_DESTINATION) -> str:
    """Return the destination type to load into.

    Args:
        production_destination: What the pipeline loads into in production.

    Returns:
        `DLT__DESTINATION` when set (via any dlt config provider), else `production_destination`.

    Raises:
        ConfigurationError: The override names a destination this project does not support.
    """
    # DLT__DESTINATION first, then the environment's (utils.environments; `duckdb` locally).
    override = dlt.config.get(_OVERRIDE_KEY, str) or environment_destination()
    chosen = (override or production_destination).strip().lower()
    if chosen not in KNOWN_DESTINATIONS:
        raise ConfigurationError(
            f"DLT__DESTINATION={chosen!r} is not a destination this project loads into; "
            f"use one of {', '.join(KNOWN_DESTINATIONS)}."
        )
    return chosen


def local_duckdb_path() -> Path:
    """Return the project's default DuckDB file (`local.duckdb_path`), creating its folder.

    A single file means one place to query everything the main job loaded. It is only the default:
    dlt's own `destination.duckdb.credentials` wins (see `duckdb_credentials`).
    """
    path = Path(dlt.config.get(_DUCKDB_PATH_KEY, str) or DEFAULT_DUCKDB_PATH).resolve()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"The DuckDB file '{path}' cannot be used: its folder cannot be created "
            f"({exc.strerror or type(exc).__name__}). Check {_DUCKDB_PATH_KEY} ({env_names([_DUCKDB_PATH_KEY])})."
        ) from None
    return path


def duckdb_credentials(pipeline_name: str) -> DuckDbCredentials | None:
    """Return the DuckDB credentials to load with: dlt's standard setting if given, else ours.

    dlt's keys win, as a dlt user expects: `DESTINATION__DUCKDB__CREDENTIALS=/path/x.duckdb` (or
    `credentials` under `[destination.duckdb]`, or under `[<pipeline_name>.destination.duckdb]` for
    one pipeline). Only when none is set does the project's default apply, `local.duckdb_path`
    (`.local/warehouse.duckdb`). A path or connection string gets the project's memory cap too.

    Args:
        pipeline_name: The pipeline's name (dlt's pipeline-scoped keys come first).

    Returns:
        The credentials, or None when dlt's setting is a table of fields (`database`, `read_only`,
        ...), which dlt then resolves itself exactly as it documents.
    """
    # DuckDB caches up to 80% of RAM by default; a cap keeps a laptop (and a 5M-row load)
    # within bounds - DuckDB spills to disk beyond it.
    global_config = {"memory_limit": dlt.config.get(_DUCKDB_MEMORY_KEY, str) or DEFAULT_DUCKDB_MEMORY_LIMIT}
    for section in (f"{pipeline_name}.destination.duckdb", "destination.duckdb"):
        value: Any = dlt.config.get(f"{section}.credentials")
        if isinstance(value, str) and value.strip():
            return DuckDbCredentials(value.strip(), global_config=global_config)
        if value is not None or dlt.config.get(f"{section}.credentials.database") is not None:
            return None
    return DuckDbCredentials(str(local_duckdb_path()), global_config=global_config)


def make_pipeline(
    pipeline_name: str,
    dataset_name: str,
    *,
    production_destination: str = PRODUCTION_DESTINATION,
    **destination_options: Any,
) -> dlt.Pipeline:
    """Create the dlt pipeline for `pipeline_name` with the project's destination rules.

    Args:
        pipeline_name: Name of the pipeline (and of its working directory and state).
        dataset_name: The dataset - a schema in Snowflake, upper-cased there by dlt.
        production_destination: Destination type used when `DLT__DESTINATION` is not set.
        **destination_options: Extra settings for the destination factory (e.g. `layout`).

    Returns:
        A configured `dlt.Pipeline`; nothing is resolved or connected yet.
    """
    # Secrets from AWS Secrets Manager when enabled (utils.vault_provider), read afresh each run.
    register_vault_provider()
    destination_type = selected_destination(production_destination)
    # The selected environment's dataset prefix/suffix and its Snowflake database, role, warehouse.
    dataset_name, environment_options = apply_environment(destination_type, dataset_name)
    options = {**environment_options, **destination_options}
    if destination_type in SQL_DESTINATIONS:
        options.setdefault("replace_strategy", REPLACE_STRATEGY)
        # dlt 1.31 leaves `supports_transactions` unset for DuckDB and Snowflake, so the staging
        # swap (DELETE + INSERT) and merge statements ran in autocommit: a failure in the INSERT
        # left the table empty. Both databases have real transactions; this makes dlt use them.
        options.setdefault("supports_transactions", True)
    if destination_type == "duckdb" and "credentials" not in options:
        credentials = duckdb_credentials(pipeline_name)
        if credentials is not None:
            options["credentials"] = credentials
    destination = Destination.from_reference(destination_type, **options)
    return dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=destination,
        dataset_name=dataset_name,
    )


def check_destination(pipeline: dlt.Pipeline) -> Any:
    """Resolve the destination's configuration now, so a missing secret fails before extraction.

    Args:
        pipeline: The pipeline to check.

    Returns:
        The resolved destination client configuration (see `prepare_destination`).

    Raises:
        ConfigurationError: Lists every missing key, where to put it, and the local alternative; or
            names a setting whose value cannot be used (a malformed key, a wrong passphrase).
    """
    try:
        return prepare_destination(pipeline)
    except ConfigFieldMissingException as exc:
        destination_type = pipeline.destination.destination_type.rsplit(".", 1)[-1]
        missing = missing_destination_keys(exc, destination_type)
        raise ConfigurationError(
            f"Pipeline '{pipeline.pipeline_name}' cannot load into {destination_type}: missing {missing.keys}. "
            f"Put {missing.pronoun} in .dlt/secrets.toml (see .dlt/secrets.toml.example), set "
            f"{missing.variables}, or enable the AWS Secrets Manager provider. To run locally without "
            "a warehouse, set DLT__DESTINATION=duckdb." + describe_missing(missing.all)
        ) from None


@dataclass(frozen=True)
class MissingKeys:
    """A destination's missing keys, worded for a message (`missing_destination_keys`)."""

    keys: str
    """E.g. `a, b and either c (key-pair authentication, ...) or d`."""
    variables: str
    """E.g. `the environment variables A, B and C or D`."""
    pronoun: str
    """`it` for one key, `them` for several."""
    all: list[str]
    """Every key named, alternatives included."""


def missing_destination_keys(exc: ConfigFieldMissingException, destination_type: str) -> MissingKeys:
    """Every key a destination's credentials lack, in one list (dlt's, and Snowflake's login keys).

    Args:
        exc: dlt's error for the destination's configuration (or for its credentials alone).
        destination_type: E.g. `snowflake`.

    Returns:
        The keys and their environment variables, worded for a message.
    """
    missing = missing_keys(exc, f"destination.{destination_type}")
    either: list[str] = []
    if destination_type == "snowflake":
        # dlt checks the login keys only once the required ones resolve: name them now too,
        # so one message lists everything to set.
        missing, either = _snowflake_login_missing(exc, missing)
    variables = [env_names([key]) for key in missing]
    if not either:
        one = len(missing) == 1
        return MissingKeys(
            keys=listing(missing),
            variables=f"the environment variable{'' if one else 's'} {listing(variables)}",
            pronoun="it" if one else "them",
            all=missing,
        )
    return MissingKeys(
        keys=(
            f"{', '.join(missing)} and either {either[0]} (key-pair authentication, as SVC_DLT uses) "
            f"or {either[1]}"
        ),
        variables=(
            f"the environment variables {', '.join(variables)} and {env_names(either[:1])} or "
            f"{env_names(either[1:])}"
        ),
        pronoun="them",
        all=[*missing, *either],
    )


def _snowflake_login_missing(
    exc: ConfigFieldMissingException, missing: list[str]
) -> tuple[list[str], list[str]]:
    """Add Snowflake's login keys that are not set to the required ones dlt reported missing.

    dlt resolves `host` and `database` first (required) and checks `username` with `password` or
    `private_key` only once they resolve (`SnowflakeCredentials.on_resolved`), so a user would
    otherwise learn of the second group only after setting the first.

    Returns:
        The missing keys with `username` added if it is not set, and the two alternatives
        (`private_key`, `password`) when neither is set (else empty). With an `authenticator` set
        (OAuth, SSO), its own keys apply: nothing is added.
    """
    section = "destination.snowflake.credentials"
    resolved: set[str] = set()
    for trace in exc.traces.get("credentials", []):
        if isinstance(trace, LookupTraces):
            resolved.update(trace.resolved_fields_set)
    if "authenticator" in resolved:
        return missing, []
    if "username" not in resolved:
        missing = sorted({*missing, f"{section}.username"})
    if resolved & {"password", "private_key", "private_key_path"}:
        return missing, []
    return missing, [f"{section}.private_key", f"{section}.password"]


def prepare_destination(pipeline: dlt.Pipeline) -> Any:
    """Resolve the destination's configuration exactly as the run will use it, and pin it.

    The one code path by which `./dev check-config` (utils.check) and every run (`check_destination`
    in `run_pipeline`) read destination credentials. A Snowflake private key is decoded here in any
    accepted form and put back in the canonical form dlt's strict decoder reads
    (`utils.snowflake_keys.normalise_credentials`); the resolved settings and credentials of a SQL
    destination are then handed to the pipeline's destination as explicit values, so the load
    connects with exactly what was checked, and dlt does not resolve them again for each client it
    makes (`_pin_resolved_settings`).

    Args:
        pipeline: The pipeline whose destination to resolve.

    Returns:
        The resolved destination client configuration.

    Raises:
        ConfigFieldMissingException: Required keys did not resolve (dlt's, with the lookup traces).
        ConfigurationError: A value cannot be used, or is still the example's placeholder; names the
            setting, never its value.
    """
    # A value still the example's placeholder is named as such, not as a value that does not parse.
    with placeholders_refused(pipeline.pipeline_name):
        return _prepare_destination(pipeline)


def _prepare_destination(pipeline: dlt.Pipeline) -> Any:
    _unpin_settings(pipeline)  # resolved afresh each time: a setting may have changed since
    destination_type = pipeline.destination.destination_type.rsplit(".", 1)[-1]
    section = f"destination.{destination_type}.credentials"
    refuse_ambiguous_url(dlt.secrets.get(section), section)
    traces = get_resolved_traces()
    start = len(traces.resolved_traces)
    try:
        client = pipeline.destination_client()
    except ConfigFieldMissingException:
        raise
    except InvalidNativeValue as exc:
        # The parser's own error quotes the part of the value it choked on - possibly a password.
        raise ConfigurationError(
            f"Pipeline '{pipeline.pipeline_name}': `{section}` does not parse as a {exc.spec.__name__}. "
            f"{ENCODE_HINT}"
        ) from None
    except ConfigurationValueError as exc:
        # dlt's own checks of a resolved value, e.g. Snowflake's "requires `username` and
        # `password`" for partial credentials. Its text is not repeated: some carry the value.
        given = {t.key for t in traces.resolved_traces[start:] if list(t.sections)[-3:] == section.split(".")}
        raise ConfigurationError(
            _incomplete_credentials(pipeline.pipeline_name, section, str(exc), given)
        ) from None
    except ValueError:
        # dlt reads `private_key_path` while resolving and raises a bare ValueError if it cannot.
        raise ConfigurationError(
            f"Pipeline '{pipeline.pipeline_name}': {section}.private_key_path cannot be read as a "
            "private key file (PEM text); check the path and the file's permissions."
        ) from None
    config = client.config
    credentials = getattr(config, "credentials", None)
    # A Snowflake URL with an unencoded password puts the rest of the password into the account
    # (host); the connector would then quote it in "cannot connect to <host>" errors.
    host = getattr(credentials, "host", None)
    if destination_type == "snowflake" and host and not _SNOWFLAKE_ACCOUNT.match(str(host)):
        raise ConfigurationError(
            f"Pipeline '{pipeline.pipeline_name}': `destination.snowflake.credentials` (the account or "
            f"database) does not parse. {ENCODE_HINT}"
        )
    if destination_type == "duckdb":
        _refuse_file_named_like_dataset(pipeline, getattr(credentials, "database", None))
        _refuse_unusable_duckdb_file(pipeline, getattr(credentials, "database", None))
    if destination_type == "snowflake":
        # Imported here: `cryptography` takes about 0.15 s to import, and only Snowflake needs it.
        from utils.snowflake_keys import normalise_credentials

        normalise_credentials(credentials)
    if destination_type in SQL_DESTINATIONS:
        _pin_resolved_settings(pipeline, config)
    return config


# Settings dlt sets for each client it makes (the dataset, the staging destination's own
# configuration): never pinned.
_PER_CLIENT_SETTINGS = frozenset(
    {"destination_type", "dataset_name", "default_schema_name", "staging_config", "as_staging_destination"}
)


# Each destination's explicit settings as they were before any pinning (the factory's arguments
# and what dlt itself binds), by destination object.
_GIVEN_SETTINGS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def _unpin_settings(pipeline: dlt.Pipeline) -> None:
    """Put the destination's explicit settings back as they were before `_pin_resolved_settings`."""
    destination = pipeline.destination
    given = _GIVEN_SETTINGS.setdefault(destination, dict(destination.config_params))
    destination.config_params.clear()
    destination.config_params.update(given)


def _pin_resolved_settings(pipeline: dlt.Pipeline, config: Any) -> None:
    """Hand the resolved destination settings to the pipeline's destination as explicit values.

    dlt resolves the destination's configuration afresh for every client it makes - the schema and
    state sync, each load job, the staging emptying, the row counts, and each time it asks for the
    destination's capabilities: about 40 times in an incremental products run, every setting
    looked up in every provider under every section, 4-5 ms of CPU each on this project's loaded
    2-core machine (`time.process_time` around dlt's `resolve_configuration`). Explicit values are
    taken as they are, so with every setting pinned once resolved (as dlt itself pins the
    local-file settings of a DuckDB destination) each later resolution is a copy. The credentials are pinned resolved too:
    every client then borrows from their one connection pool (for DuckDB, a session on the database
    the run engine keeps open) instead of opening a connection of its own. The values are the ones
    dlt resolved, so nothing a setting says changes; the next `prepare_destination` of the same
    pipeline unpins them first and resolves afresh.
    """
    if not config.is_resolved():
        return
    params = pipeline.destination.config_params
    for name in config.get_resolvable_fields():
        if name not in _PER_CLIENT_SETTINGS:
            params[name] = getattr(config, name, None)  # an explicit None is taken as it is too
    if pipeline.staging is None and "staging_config" in config.get_resolvable_fields():
        # Without a staging destination dlt leaves it None, but still tries to resolve an embedded
        # staging configuration each time (half of what was left of each resolution).
        params["staging_config"] = None


def _refuse_file_named_like_dataset(pipeline: dlt.Pipeline, database: str | None) -> None:
    """Refuse a DuckDB file whose name is one of the pipeline's datasets (`hubspot.duckdb`).

    DuckDB names the catalog of an attached file after its stem, so a schema of the same name makes
    every unqualified reference ambiguous ("Ambiguous reference to catalog or schema") and every
    load fails. The dataset and dlt's staging dataset (`<dataset>_staging`) both count.
    """
    if not database or database == ":memory:":
        return
    stem = Path(database).stem.lower()
    dataset = pipeline.dataset_name.lower()
    if stem in (dataset, f"{dataset}_staging"):
        raise ConfigurationError(
            f"Pipeline '{pipeline.pipeline_name}': the DuckDB file '{Path(database).name}' is named like its "
            f"dataset '{stem}', which DuckDB cannot tell apart (\"Ambiguous reference to catalog or "
            'schema"). Give the file another name in local.duckdb_path (LOCAL__DUCKDB_PATH) or '
            "destination.duckdb.credentials, e.g. warehouse.duckdb."
        )


# DuckDB's storage header: the magic bytes at this offset of every database file.
_DUCKDB_MAGIC = b"DUCK"
_DUCKDB_MAGIC_OFFSET = 8


def _refuse_unusable_duckdb_file(pipeline: dlt.Pipeline, database: str | None) -> None:
    """Refuse a DuckDB file that cannot be opened: its folder is missing, or it is not a DuckDB file.

    Without this, dlt meets it only when it first connects - on a first run after extracting, on a
    later run while checking for dropped tables - and reports it as a connection error ("your
    internet connection may be down") that names no setting and is retried as if it could heal.
    Nothing is created here: a file that does not exist yet is created by the load, as before.
    """
    if not database or database == ":memory:" or database.startswith("md:"):
        return
    path = Path(database)
    if not path.parent.is_dir():
        problem = f"its folder '{path.parent}' does not exist"
    elif path.is_dir():
        problem = "it is a folder, not a file"
    elif not path.exists():
        return
    else:
        try:
            with path.open("rb") as file:
                header = file.read(_DUCKDB_MAGIC_OFFSET + len(_DUCKDB_MAGIC))
        except OSError as exc:
            problem = f"it cannot be read ({exc.strerror or type(exc).__name__})"
        else:
            if header[_DUCKDB_MAGIC_OFFSET:] == _DUCKDB_MAGIC:
                return
            problem = "it is not a DuckDB database file"
    setting = _duckdb_path_setting(pipeline.pipeline_name)
    raise ConfigurationError(
        f"Pipeline '{pipeline.pipeline_name}' cannot load into DuckDB file '{path}': {problem}. "
        f"Check {setting} ({env_names([setting])}): point it at a .duckdb file in an existing folder."
    )


def _duckdb_path_setting(pipeline_name: str) -> str:
    """The setting the DuckDB file's path came from (see `duckdb_credentials`)."""
    for section in (f"{pipeline_name}.destination.duckdb", "destination.duckdb"):
        if dlt.config.get(f"{section}.credentials.database") is not None:
            return f"{section}.credentials.database"
        if dlt.config.get(f"{section}.credentials") is not None:
            return f"{section}.credentials"
    return _DUCKDB_PATH_KEY


def _incomplete_credentials(pipeline_name: str, section: str, dlt_message: str, given: set[str]) -> str:
    """What to set when dlt refused resolved credentials; `given` are the keys that did resolve."""
    if "username" in dlt_message and "password" in dlt_message:
        either = (
            f"either {section}.private_key (key-pair authentication, as SVC_DLT uses) or {section}.password"
        )
        login = {"password", "private_key", "private_key_path"} & given
        if "username" in given and not login:
            needed = either
        elif login and "username" not in given:
            needed = f"{section}.username"
        else:
            needed = f"{section}.username and {either}"
    else:
        needed = f"every key of {section} its authentication method needs"
    return (
        f"Pipeline '{pipeline_name}': {section} are incomplete or inconsistent: set {needed}. "
        "To run locally without a warehouse, set DLT__DESTINATION=duckdb."
    )
