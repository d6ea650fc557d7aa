"""AWS Secrets Manager as a dlt configuration provider: where CI/CD and production read their secrets.

Naming scheme - one JSON secret per source or destination section, holding that section's keys:

    <prefix>/sources/<source section>      e.g. data-pipelines/production/sources/products
    <prefix>/destination/<destination>     e.g. data-pipelines/production/destination/snowflake

    data-pipelines/production/sources/products     {"credentials": {"host": "...", "password": "..."}}
    data-pipelines/production/sources/hubspot      {"access_token": "pat-..."}
    data-pipelines/production/destination/snowflake
        {"credentials": {"host": "...", "username": "SVC_DLT", "private_key": "...",
                         "private_key_passphrase": "..."}}

The JSON inside a secret has the shape of that section in `.dlt/secrets.toml`, so a value moves
between the two without renaming: `[sources.products.credentials] host = ...` is
`{"credentials": {"host": ...}}` in the secret `<prefix>/sources/products`. The vault is the last
provider: environment variables and the TOML files are asked first, so it fills what nothing else
set. A secret is read when dlt first asks for a secret value of its section (a `credentials` block,
`access_token`, ...); the other keys in it (a credential's host, user, database) are then served
from the same read. Plain settings such as `base_url` belong in `.dlt/config.toml`.

Settings (dlt configuration, e.g. environment variables): `vault.enabled` (`VAULT__ENABLED`),
`vault.prefix` (`VAULT__PREFIX`) and `vault.region` (`VAULT__REGION`). Unset, they come from the
selected environment (`vault_enabled`, `vault_prefix` under `[environments.<name>]`, see
`utils.environments`): on in ci and production, off locally and when no environment is selected.
The region otherwise comes from boto3's own chain (`AWS_REGION`, the profile), as do the credentials
(environment, profile, SSO, the instance or task role): no key is ever configured here.

This is a provider of dlt's own interface, registered the documented way
(`dlt.config.register_provider`), not a subclass of dlt 1.31's `AwsSecretsManagerProvider`: that one
probes a `dlt_secrets_toml` document and several names per key, expects fragments rooted at the top
of the configuration document, and logs AccessDenied, KMS and invalid-request errors as warnings and
carries on as if the secret were missing. Leave `PROVIDERS__ENABLE_AWS_SECRETS` (dlt's) unset.
Behaviour:

* One API call per secret per pipeline run: `make_pipeline` re-registers the provider at the start of
  every run, which empties the cache; within the run every secret is fetched at most once (hits and
  misses alike), however often dlt resolves its configuration.
* A secret that does not exist is a miss: resolution falls through, and a key nobody provides is
  reported missing as usual - with the secret to create (see `describe_missing`).
* Access denied, throttling (after botocore's standard retries), an unreadable or non-JSON secret
  raise at once, naming the secret and never its value; refusals are permanent errors (the flows do
  not retry them), throttling and outages transient ones.
* Only `sources.<name>.*` and `destination.<name>.*` are looked up, never pipeline-scoped variants
  and never a local destination's (`destination.duckdb.*`: a DuckDB run asks the vault only for
  its sources' secrets),
  and a secret is only fetched for a secret value: dlt's many lookups of plain settings (and of
  sections that are not sources, like `sources.extract`) cost no API call.
* Registration is idempotent; dlt raises when a provider name is registered twice.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dlt
from dlt.common.configuration.container import Container
from dlt.common.configuration.providers import ConfigProvider
from dlt.common.configuration.specs.base_configuration import is_secret_hint
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

from utils.errors import ConfigurationError, UpstreamUnavailableError

PROVIDER_NAME = "AWS Secrets Manager (utils.vault_provider)"
DEFAULT_PREFIX = "data-pipelines"
# The dlt sections a secret can stand for: `<prefix>/<top>/<name>`.
SECRET_SECTIONS = ("sources", "destination")
# Second-level names that are dlt's own sections, never a source or destination name: dlt asks
# e.g. for `sources.runtime.*` and `destination.staging_config.credentials`, and each would cost an
# API call for a secret that cannot exist.
_NOT_SECTION_NAMES = frozenset(
    {"credentials", "schema", "staging_config", "runtime", "extract", "normalize", "load", "data_writer"}
)
# Destinations whose settings never come from the vault: a local DuckDB file needs no secret, yet
# dlt asks for `destination.duckdb.credentials` on every run - an API call for a secret nobody
# creates, and with AWS unreachable a failure naming that secret instead of the one the run needs.
LOCAL_DESTINATIONS = frozenset({"duckdb"})

# Error codes of GetSecretValue, by what the person reading the message has to do.
_ACCESS_CODES = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "DecryptionFailure",
    }
)
_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "InternalServiceError",
        "InternalFailure",
        "ServiceUnavailable",
    }
)

logger = logging.getLogger(__name__)


class SecretAccessError(ConfigurationError):
    """AWS Secrets Manager refused to hand out a secret (permissions, KMS, credentials, deletion)."""


class SecretFormatError(ConfigurationError):
    """A secret exists but is not a JSON object."""


class SecretsManagerUnavailableError(UpstreamUnavailableError):
    """AWS Secrets Manager kept throttling or failing after botocore's retries; worth a later retry."""


@dataclass(frozen=True)
class VaultSettings:
    """How the provider is configured.

    Attributes:
        enabled: Whether the provider is registered at all.
        prefix: Prepended to every secret name (without a trailing `/`); may be empty.
        region: AWS region; None lets boto3 find it (`AWS_REGION`, `AWS_DEFAULT_REGION`, profile).
    """

    enabled: bool
    prefix: str = DEFAULT_PREFIX
    region: str | None = None

    def secret_name(self, top: str, name: str) -> str:
        """Name of the secret holding section `<top>.<name>`, e.g. `data-pipelines/sources/hubspot`."""
        return "/".join(part for part in (self.prefix, top, name) if part)


def vault_settings() -> VaultSettings:
    """Read the provider's settings: `vault.*` first, then the selected environment's, then defaults.

    Raises:
        ConfigurationError: `DLT__ENVIRONMENT` names an unknown environment.
    """
    # Imported here: utils.environments is configuration, this module is imported by destinations.
    from utils.environments import selected_environment

    environment = selected_environment()
    enabled = dlt.config.get("vault.enabled", bool)
    if enabled is None:
        enabled = environment.vault_enabled if environment else False
    prefix = dlt.config.get("vault.prefix", str)
    if prefix is None:
        prefix = (environment.vault_prefix if environment else None) or DEFAULT_PREFIX
    region = dlt.config.get("vault.region", str)
    return VaultSettings(enabled=bool(enabled), prefix=prefix.strip().strip("/"), region=region or None)


class SecretsManagerProvider(ConfigProvider):
    """A dlt config provider reading `sources.<name>` / `destination.<name>` sections from JSON secrets.

    Thread-safe: one lock guards the cache, and it is held during the API call so that parallel
    resolutions (dlt loads in threads) still make one call per secret.

    Args:
        settings: Prefix and region (`enabled` is not read here).
    """

    def __init__(self, settings: VaultSettings) -> None:
        self.settings = settings
        self._lock = threading.RLock()
        self._client: Any = None
        # secret name -> its JSON object, or None when the secret does not exist
        self._secrets: dict[str, dict[str, Any] | None] = {}

    # -- dlt's provider interface ---------------------------------------------------------------

    @property
    def name(self) -> str:
        """The provider's name, shown by dlt in its lookup traces."""
        return PROVIDER_NAME

    @property
    def supports_secrets(self) -> bool:
        """Secret values may come from here."""
        return True

    @property
    def supports_sections(self) -> bool:
        """Keys are asked for with their sections: the secret name depends on them."""
        return True

    @property
    def is_empty(self) -> bool:
        """Never empty: dlt skips empty providers, and what exists is known only when asked."""
        return False

    @property
    def locations(self) -> Sequence[str]:
        """None: dlt prints locations as file paths; the secret names are in its lookup traces."""
        return []

    def get_value(
        self, key: str, hint: type[Any], pipeline_name: str | None, *sections: str
    ) -> tuple[Any | None, str]:
        """Look `key` up in the secret of its section.

        Args:
            key: The key, e.g. `host`.
            hint: dlt's type hint (the value is coerced by dlt, not here).
            pipeline_name: Set for pipeline-scoped lookups, which this provider does not serve.
            *sections: e.g. `("sources", "products", "credentials")`.

        Returns:
            The value (or None) and where it was looked for: `<secret name>:<key path>`.

        Raises:
            SecretAccessError: The secret may not be read.
            SecretFormatError: The secret is not a JSON object.
            SecretsManagerUnavailableError: Secrets Manager is throttling or unavailable.
        """
        path = (*sections, key)
        dotted = ".".join(path)
        located = self._locate(pipeline_name, path)
        if located is None:
            return None, dotted
        secret_name, inner = located
        where = f"{secret_name}:{'.'.join(inner)}"
        if not is_secret_hint(hint) and self.cached_state(secret_name) == "unknown":
            return None, where  # plain settings never cost an API call (see the module docstring)
        document = self._secret(secret_name)
        node: Any = document
        for part in inner:
            if not isinstance(node, dict) or part not in node:
                return None, where
            node = node[part]
        return node, where

    def get_value_location(self, key: str, pipeline_name: str | None, *sections: str) -> str:
        """The secret a value came from (dlt records it in its traces; `utils.check` shows it)."""
        located = self._locate(pipeline_name, (*sections, key))
        return located[0] if located else ""

    # -- cache ----------------------------------------------------------------------------------

    def clear_cache(self) -> None:
        """Forget every secret read so far: the next lookup of each makes one API call again."""
        with self._lock:
            self._secrets.clear()

    def cached_state(self, secret_name: str) -> str:
        """`found`, `missing` or `unknown` (not asked yet in this run) for `secret_name`."""
        with self._lock:
            if secret_name not in self._secrets:
                return "unknown"
            return "missing" if self._secrets[secret_name] is None else "found"

    def secret_for(self, dotted_key: str) -> tuple[str, str] | None:
        """Secret name and key path inside it for a key like `sources.hubspot.access_token`."""
        located = self._locate(None, tuple(dotted_key.split(".")))
        return (located[0], ".".join(located[1])) if located else None

    # -- internals ------------------------------------------------------------------------------

    def _locate(self, pipeline_name: str | None, path: tuple[str, ...]) -> tuple[str, tuple[str, ...]] | None:
        if pipeline_name or len(path) < 3 or path[0] not in SECRET_SECTIONS or path[1] in _NOT_SECTION_NAMES:
            return None
        if path[0] == "destination" and path[1] in LOCAL_DESTINATIONS:
            return None
        return self.settings.secret_name(path[0], path[1]), path[2:]

    def _secret(self, secret_name: str) -> dict[str, Any] | None:
        with self._lock:
            if secret_name not in self._secrets:
                self._secrets[secret_name] = self._fetch(secret_name)
            return self._secrets[secret_name]

    def _get_client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            # boto3's standard chains find credentials, the region (unless configured) and the
            # endpoint (`AWS_ENDPOINT_URL`, used by the tests' moto server). "standard" retries
            # throttling and 5xx with backoff; `AWS_MAX_ATTEMPTS` still sets the number of tries.
            session = boto3.session.Session(region_name=self.settings.region)
            self._client = session.client("secretsmanager", config=Config(retries={"mode": "standard"}))
        return self._client

    def _fetch(self, secret_name: str) -> dict[str, Any] | None:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionError,
            NoCredentialsError,
            NoRegionError,
        )

        try:
            client = self._get_client()
            with _quiet_botocore():
                response = client.get_secret_value(SecretId=secret_name)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "Unknown"))
            if code == "ResourceNotFoundException":
                logger.debug("secret %s does not exist; falling through", secret_name)
                return None
            raise _client_error(secret_name, code, str(error.get("Message", ""))) from None
        except NoRegionError:
            raise ConfigurationError(
                f"Cannot read AWS Secrets Manager secret '{secret_name}': no AWS region. Set "
                "VAULT__REGION (vault.region) or AWS_REGION."
            ) from None
        except NoCredentialsError:
            raise SecretAccessError(
                f"Cannot read AWS Secrets Manager secret '{secret_name}': boto3 found no AWS "
                "credentials (environment, profile, SSO or instance/task role). On a laptop, "
                "leave the vault off (VAULT__ENABLED=false) and use .dlt/secrets.toml."
            ) from None
        except (ConnectionError, BotoCoreError) as exc:
            raise SecretsManagerUnavailableError(
                f"Cannot reach AWS Secrets Manager to read secret '{secret_name}': "
                f"{type(exc).__name__}. The run can be retried."
            ) from None
        return _parse(secret_name, response)


def _client_error(secret_name: str, code: str, aws_message: str) -> Exception:
    # AWS's messages name principals and ARNs, never the secret value; the first line is enough.
    detail = f"{code}: {aws_message.splitlines()[0]}" if aws_message else code
    if code in _TRANSIENT_CODES:
        return SecretsManagerUnavailableError(
            f"AWS Secrets Manager did not return secret '{secret_name}' ({detail}) after retrying. "
            "The run can be retried later."
        )
    if code in _ACCESS_CODES:
        hint = (
            "kms:Decrypt on the secret's KMS key"
            if code == "DecryptionFailure"
            else "secretsmanager:GetSecretValue on it (AWS also answers AccessDenied for a secret "
            "that does not exist when that permission is missing for its name)"
        )
        return SecretAccessError(
            f"AWS Secrets Manager refused secret '{secret_name}' ({detail}). Give the role this "
            f"runs as {hint}."
        )
    return SecretAccessError(f"AWS Secrets Manager cannot return secret '{secret_name}' ({detail}).")


def _parse(secret_name: str, response: dict[str, Any]) -> dict[str, Any]:
    text = response.get("SecretString")
    if text is None:
        binary = response.get("SecretBinary")
        try:
            text = bytes(binary).decode("utf-8") if binary is not None else None
        except UnicodeDecodeError:
            text = None
    if text is None:
        raise SecretFormatError(
            f"AWS Secrets Manager secret '{secret_name}' holds no text; store a JSON object."
        )
    try:
        document = json.loads(text)
        problem = None
    except json.JSONDecodeError as exc:
        # Position only, and raised outside this block: the decode error's `doc` attribute is the
        # secret text, so it must not travel along as the new error's cause or context.
        problem = f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
    if problem is not None:
        raise SecretFormatError(
            f"AWS Secrets Manager secret '{secret_name}' is not valid JSON ({problem}). Store a JSON "
            'object such as {"credentials": {"host": "..."}}.'
        )
    if not isinstance(document, dict):
        raise SecretFormatError(
            f"AWS Secrets Manager secret '{secret_name}' is JSON but not an object (a "
            f"{type(document).__name__}); store the section's keys, e.g. "
            '{"access_token": "..."} or {"credentials": {...}}.'
        )
    return document


@contextmanager
def _quiet_botocore() -> Iterator[None]:
    """Keep botocore's DEBUG logging (which can include response bodies) off during the call.

    Someone debugging with `logging.basicConfig(level=DEBUG)` must not get secret values in
    their logs; botocore logs the raw response of GetSecretValue at DEBUG.
    """
    botocore_logger = logging.getLogger("botocore")
    previous = botocore_logger.level
    if botocore_logger.getEffectiveLevel() < logging.INFO:
        botocore_logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        botocore_logger.setLevel(previous)


_registration_lock = threading.Lock()


def _providers() -> Any:
    return Container()[PluggableRunContext].providers


def registered_provider() -> SecretsManagerProvider | None:
    """The provider registered in this process's dlt configuration, if any."""
    providers = _providers()
    if PROVIDER_NAME not in providers:
        return None
    provider = providers[PROVIDER_NAME]
    return provider if isinstance(provider, SecretsManagerProvider) else None


def register_vault_provider(*, clear_cache: bool = True) -> SecretsManagerProvider | None:
    """Make dlt's configuration match the vault settings; safe to call any number of times.

    Enabled: registers the provider (after every other provider), or keeps the registered one if
    its prefix and region are unchanged. Disabled: removes a registered one. `make_pipeline` calls
    this at the start of every pipeline run.

    Args:
        clear_cache: Forget secrets read before, so each run reads each secret once, fresh.

    Returns:
        The active provider, or None when the vault is disabled.
    """
    settings = vault_settings()
    with _registration_lock:
        providers = _providers()
        current = registered_provider()
        if not settings.enabled:
            if current is not None:
                providers.providers.remove(current)
            return None
        if current is not None and current.settings == settings:
            if clear_cache:
                current.clear_cache()
            return current
        provider = SecretsManagerProvider(settings)
        if current is None:
            dlt.config.register_provider(provider)
        else:
            providers[PROVIDER_NAME] = provider  # replaces it in place, keeping the order
        return provider


def unregister_vault_provider() -> None:
    """Remove the provider from dlt's configuration (tests, and a process switching it off)."""
    with _registration_lock:
        current = registered_provider()
        if current is not None:
            _providers().providers.remove(current)


def describe_missing(keys: Sequence[str]) -> str:
    """A sentence for error messages: which secret should hold each missing key.

    Args:
        keys: Missing keys, e.g. `sources.hubspot.access_token`.

    Returns:
        "" when the vault is off; otherwise, per secret, the keys to add and whether the secret
        itself exists, e.g. "In AWS Secrets Manager, add access_token to the JSON secret
        'data-pipelines/ci/sources/hubspot' (it does not exist)."
    """
    provider = registered_provider()
    if provider is None:
        return ""
    wanted: dict[str, list[str]] = {}
    for key in keys:
        located = provider.secret_for(key)
        if located is not None:
            wanted.setdefault(located[0], []).append(located[1])
    if not wanted:
        return ""
    states = {"missing": " (it does not exist)", "found": " (it exists without them)", "unknown": ""}
    parts = [
        f"{', '.join(inner)} to the JSON secret '{name}'{states[provider.cached_state(name)]}"
        for name, inner in wanted.items()
    ]
    return " In AWS Secrets Manager, add " + "; ".join(parts) + "."
