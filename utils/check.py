"""Does every pipeline have what it needs here? Which settings and secrets resolve, and from where.

    python -m utils.check                  # every pipeline in pipelines/
    python -m utils.check products hubspot # some of them
    ./dev check-config

For each pipeline, in the environment selected now (`DLT__ENVIRONMENT`, `DLT__DESTINATION`, the vault
settings - exactly as a run would see them), this resolves the source's configuration and the
destination's, as dlt does at the start of a run, and lists every key that resolved with the
provider it came from (environment variable, `.dlt/*.toml` file, AWS Secrets Manager secret, the
environment's own settings) and every required key that did not. Values are never printed - not
even masked. A Snowflake private key is also decoded, to catch a wrong passphrase before the first
load. Nothing is extracted and no connection is opened, except to AWS Secrets Manager when the
vault is on.

Exit status: 0 when every pipeline is ready, 1 otherwise (the missing keys are listed at the end).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import dlt
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.configuration.inject import get_fun_spec
from dlt.common.configuration.providers.provider import EXPLICIT_VALUES_PROVIDER_NAME
from dlt.common.configuration.providers.toml import TomlProviderReadException
from dlt.common.configuration.resolve import resolve_configuration
from dlt.common.configuration.specs.base_configuration import is_secret_hint
from dlt.common.configuration.utils import ResolvedValueTrace, get_resolved_traces
from dlt.extract.decorators import DltSourceFactoryWrapper

from utils.config_keys import describe_toml_error, is_placeholder, missing_keys
from utils.destinations import prepare_destination
from utils.environments import (
    ENVIRONMENT_VARIABLE,
    Environment,
    apply_environment,
    environment_is_default,
    selected_environment,
)
from utils.errors import PipelineError
from utils.vault_provider import PROVIDER_NAME, VaultSettings, register_vault_provider, vault_settings

OK = "ok"
MISSING = "MISSING"
ROLE = "role"
ROLE_ORIGIN = (
    "not set: at run time boto3's credential chain must supply it (the worker's IAM role); "
    "none was found on this machine"
)
# Keys of dlt's AwsCredentials that boto3's chain (an instance or task role) replaces.
_AWS_KEYS_FROM_ROLE = (
    "destination.filesystem.credentials.aws_access_key_id",
    "destination.filesystem.credentials.aws_secret_access_key",
)
_log = logging.getLogger(__name__)
# dlt's `pipelines_dir` setting (PipelineConfiguration), looked up without sections last.
_PIPELINES_DIR = "PIPELINES_DIR"
# The destination override (`DLT__DESTINATION`) as utils.destinations reads it.
DESTINATION_KEY = "dlt.destination"
# The one destination that is a file on this machine, never production.
LOCAL_DESTINATION = "duckdb"


@dataclass(frozen=True)
class Setting:
    """One configuration key of a pipeline and where it came from (never its value).

    Attributes:
        key: Full key, e.g. `sources.products.credentials.host`.
        origin: Where it resolved, e.g. `environment variable SOURCES__...`; empty when missing.
        secret: Whether dlt treats it as a secret.
        missing: True when a required key did not resolve.
        role: True for AWS keys left to boto3's chain (the worker's IAM role); not missing.
    """

    key: str
    origin: str = ""
    secret: bool = False
    missing: bool = False
    role: bool = False


@dataclass
class PipelineCheck:
    """What `check_pipeline` found for one pipeline.

    Attributes:
        name: Pipeline (module) name.
        destination: Destination type it loads into now.
        dataset: Dataset (schema) name.
        settings: Resolved and missing keys, sorted.
        errors: Problems other than missing keys (a refused secret, an undecodable key), as messages
            that never contain a value.
    """

    name: str
    destination: str = "?"
    dataset: str = "?"
    settings: list[Setting] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        """The required keys that did not resolve."""
        return [s.key for s in self.settings if s.missing]

    @property
    def ready(self) -> bool:
        """Nothing missing, nothing wrong."""
        return not self.missing and not self.errors


def pipeline_names() -> list[str]:
    """Every pipeline module in `pipelines/` (one with `pipeline()` and `run()`), in name order."""
    import pipelines

    names = []
    for info in sorted(pkgutil.iter_modules(pipelines.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"pipelines.{info.name}")
        if callable(getattr(module, "pipeline", None)) and callable(getattr(module, "run", None)):
            names.append(info.name)
    return names


def check_pipeline(name: str) -> PipelineCheck:
    """Resolve a pipeline's source and destination configuration and report every key's origin.

    Args:
        name: A module of `pipelines/`.

    Returns:
        What resolved from where, what is missing, and any other problem.
    """
    result = PipelineCheck(name)
    module = importlib.import_module(f"pipelines.{name}")
    environment = selected_environment()
    traces = get_resolved_traces()
    traces.clear()
    try:
        with _scratch_pipelines_dir():
            pipeline = module.pipeline()  # registers the vault provider, applies the environment
        result.destination = pipeline.destination.destination_type.rsplit(".", 1)[-1]
        result.dataset = pipeline.dataset_name
        _check_source(module, result)
        _check_destination(pipeline, result)
    except PipelineError as exc:  # our errors never carry a value
        result.errors.append(str(exc))
    except Exception as exc:  # reported, never a traceback; the text may carry a value, so not shown
        _log.debug("check of %s failed", name, exc_info=True)
        result.errors.append(
            f"unexpected {type(exc).__module__}.{type(exc).__name__} while resolving the settings "
            "(its text is not shown, as it may contain a value); run "
            f'`python -c "from pipelines.{name} import run; run()"` with RUNTIME__LOG_LEVEL=DEBUG to see it.'
        )
    resolved = [_setting(trace) for trace in traces.resolved_traces if _belongs(trace, result)]
    # dlt does not trace explicit values: add what the environment pins (see make_pipeline).
    if environment is not None and result.destination != "?":
        _, pinned = apply_environment(result.destination, result.dataset)
        origin = f"environment '{environment.name}' ([environments.{environment.name}] in .dlt/config.toml)"
        prefix = f"destination.{result.destination}"
        for option, value in pinned.items():
            names = [f"credentials.{k}" for k in value] if isinstance(value, dict) else [option]
            resolved += [Setting(f"{prefix}.{name}", origin=origin) for name in names]
    missing = {s.key for s in result.settings}
    result.settings += [s for s in {s.key: s for s in resolved}.values() if s.key not in missing]
    result.settings.sort(key=lambda s: s.key)
    traces.clear()
    return result


@contextmanager
def _scratch_pipelines_dir() -> Iterator[None]:
    """Build the pipeline in a throw-away working directory.

    `dlt.pipeline()` opens (and would warn about) the real pipeline's state; a check must not touch
    it. dlt reads `pipelines_dir` from its configuration, so an environment variable does it.
    """
    previous = os.environ.get(_PIPELINES_DIR)
    with tempfile.TemporaryDirectory(prefix="check-config-") as scratch:
        os.environ[_PIPELINES_DIR] = scratch
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(_PIPELINES_DIR, None)
            else:
                os.environ[_PIPELINES_DIR] = previous


def _check_source(module: ModuleType, result: PipelineCheck) -> None:
    factories = [v for v in vars(module).values() if isinstance(v, DltSourceFactoryWrapper)]
    for factory in factories:
        spec = get_fun_spec(factory)
        if spec is None:
            continue
        section = factory.section or factory.name
        try:
            resolve_configuration(spec(), sections=("sources", section, factory.name))
        except ConfigFieldMissingException as exc:
            result.settings += [Setting(key, missing=True) for key in missing_keys(exc, f"sources.{section}")]


def _check_destination(pipeline: Any, result: PipelineCheck) -> None:
    # The run's own code path (utils.destinations.prepare_destination): a key or a credential form
    # is accepted here exactly when the run accepts it.
    try:
        prepare_destination(pipeline)
    except ConfigFieldMissingException as exc:
        prefix = f"destination.{result.destination}"
        missing = missing_keys(exc, prefix)
        if result.destination == "filesystem" and set(missing) <= set(_AWS_KEYS_FROM_ROLE):
            # dlt found no AWS keys and no credentials in boto3's chain *here*; on a worker the
            # chain finds its IAM role (README), so this is a note, not a missing secret.
            result.settings += [Setting(key, origin=ROLE_ORIGIN, role=True) for key in missing]
            return
        result.settings += [Setting(key, missing=True) for key in missing]


def _belongs(trace: ResolvedValueTrace, result: PipelineCheck) -> bool:
    sections = list(trace.sections)
    if sections[:1] == [result.name] and sections[1:2] in (["sources"], ["destination"]):
        sections = sections[1:]  # a pipeline-scoped key, e.g. products.sources.products.credentials
    return len(sections) >= 2 and (
        sections[0] == "sources" or (sections[0] == "destination" and sections[1] == result.destination)
    )


def _setting(trace: ResolvedValueTrace) -> Setting:
    sections = list(trace.sections)
    key = ".".join([*sections, trace.key])
    if trace.provider_name == EXPLICIT_VALUES_PROVIDER_NAME:
        origin = "set by make_pipeline (utils/destinations.py)"
    elif trace.provider_name == "Environment Variables":
        origin = f"environment variable {'__'.join([*sections, trace.key]).upper()}"
    elif trace.provider_name == PROVIDER_NAME:
        origin = f"AWS Secrets Manager secret {trace.provider_location}"
    else:
        location = trace.provider_location
        origin = trace.provider_name + (
            f" ({location})" if location and location != trace.provider_name else ""
        )
    if is_placeholder(trace.value):
        # A copy of secrets.toml.example not yet filled in: the value resolves, but a run fails on
        # it with a misleading message (a host "<host>" does not parse).
        origin += " - still the example's <...> placeholder: replace it with the real value"
        return Setting(key, origin=origin, secret=is_secret_hint(trace.hint), missing=True)
    return Setting(key, origin=origin, secret=is_secret_hint(trace.hint))


def describe_environment(
    environment: Environment | None, settings: VaultSettings, destinations: Sequence[str] = ()
) -> str:
    """One line on what applies: the environment, and whether and where the vault is read.

    Args:
        environment: The selected environment.
        settings: The vault's settings.
        destinations: The destination each checked pipeline loads into now. In the default
            environment the line says "nothing loads into production" only if all are DuckDB;
            otherwise it names what sends them elsewhere (`DLT__DESTINATION`, or the
            environment's `destination` key).
    """
    override = (dlt.config.get(DESTINATION_KEY, str) or "").strip().lower()
    # Only a DuckDB file is local; anything else may be production's.
    elsewhere = sorted({d for d in destinations if d != LOCAL_DESTINATION})
    if environment is not None and environment_is_default():
        if not elsewhere:
            only = f"every pipeline loads into {LOCAL_DESTINATION}, " if destinations else ""
            where = (
                f"environment: {environment.name} (the default: {ENVIRONMENT_VARIABLE} is not set, so "
                f"{only}nothing loads into production; set it to production on the work pool, ci in CI)"
            )
        else:
            cause = (
                f"DLT__DESTINATION={override}"
                if override
                else f"environments.{environment.name}.destination={environment.destination}"
            )
            where = (
                f"environment: {environment.name} (the default: {ENVIRONMENT_VARIABLE} is not set), but "
                f"{cause} sends pipelines to {', '.join(elsewhere)} (as listed below), not the local "
                "DuckDB file: the settings below decide which account or bucket - production's if "
                "they are production's"
            )
    elif environment is not None:
        where = f"environment: {environment.name} ({ENVIRONMENT_VARIABLE})"
        if override:
            where += f"; DLT__DESTINATION={override} overrides every pipeline's destination"
    else:
        where = f"environment: none ({ENVIRONMENT_VARIABLE} not set)"
    vault = (
        f"AWS Secrets Manager: on, secrets {settings.prefix}/sources/<name> and "
        f"{settings.prefix}/destination/<name>, region {settings.region or 'from the AWS configuration'}"
        if settings.enabled
        else "AWS Secrets Manager: off"
    )
    return f"{where}\n{vault}"


def render(checks: Sequence[PipelineCheck], header: str) -> str:
    """The report: one block per pipeline, then the verdict and every missing key."""
    lines = [header, ""]
    width = max((len(s.key) for c in checks for s in c.settings), default=40)
    for check in checks:
        lines.append(f"{check.name} -> {check.destination}, dataset {check.dataset}")
        for setting in check.settings:
            status = MISSING if setting.missing else ROLE if setting.role else OK
            kind = "secret" if setting.secret else ""
            lines.append(f"  {status:<8} {setting.key:<{width}} {kind:<6} {setting.origin}".rstrip())
        lines += [f"  ERROR    {error}" for error in check.errors]
        lines.append("")
    ready = [c.name for c in checks if c.ready]
    lines.append(f"{len(checks)} pipeline(s) checked, {len(ready)} ready.")
    missing = sorted({key for c in checks for key in c.missing})
    if missing:
        lines.append("Missing:")
        lines += [
            f"  {key}  (env {key.upper().replace('.', '__')}; needed by "
            + ", ".join(c.name for c in checks if key in c.missing)
            + ")"
            for key in missing
        ]
    failing = [c.name for c in checks if c.errors]
    if failing:
        lines.append("Errors in: " + ", ".join(failing))
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit code (0 all ready, 1 otherwise).

    Args:
        argv: Pipeline names (default: all); `sys.argv[1:]` when None.
    """
    parser = argparse.ArgumentParser(
        prog="python -m utils.check",
        description="Check that every setting and secret each pipeline needs resolves, and from where.",
    )
    parser.add_argument("pipelines", nargs="*", help="pipeline names (default: every pipeline)")
    args = parser.parse_args(argv)
    try:
        environment = selected_environment()
        settings = vault_settings()
        register_vault_provider()
        valid = pipeline_names()
        names = args.pipelines or valid
        unknown = sorted(set(names) - set(valid))
        if unknown:
            print(
                f"error: no such pipeline: {', '.join(unknown)}. The pipelines are: {', '.join(valid)}.",
                file=sys.stderr,
            )
            return 1
        checks = [check_pipeline(name) for name in names]
    except TomlProviderReadException as exc:
        print(f"error: {describe_toml_error(exc)}", file=sys.stderr)
        return 1
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    header = describe_environment(
        environment, settings, [c.destination for c in checks if c.destination != "?"]
    )
    sys.stdout.write(render(checks, header))
    return 0 if all(c.ready for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
