"""The configuration keys dlt could not find, and the files it could not read, named for a person.

dlt reports a missing setting as a `ConfigFieldMissingException` whose traces nest one level per
configuration spec (the credentials inside a destination's section...). This is the one place that
turns them into keys such as `destination.snowflake.credentials.host`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dlt.common.configuration.exceptions import ConfigFieldMissingException, LookupTraces
from dlt.common.configuration.providers.toml import TomlProviderReadException
from dlt.common.configuration.specs.base_configuration import (
    BaseConfiguration,
    extract_inner_hint,
    is_secret_hint,
)
from dlt.common.configuration.utils import get_resolved_traces

from utils.errors import ConfigurationError


def missing_keys(missing: ConfigFieldMissingException | Mapping[str, Any], prefix: str) -> list[str]:
    """Every missing key under `prefix`, sorted, each once.

    Args:
        missing: dlt's exception, or its `traces`.
        prefix: The section the traces belong to, e.g. `sources.products` or `destination.snowflake`.

    Returns:
        Dotted keys, e.g. `sources.products.credentials.password`.
    """
    traces = missing.traces if isinstance(missing, ConfigFieldMissingException) else missing
    keys: list[str] = []
    for name, field_traces in traces.items():
        nested = [t for t in field_traces if isinstance(t, LookupTraces)]
        if nested:
            for trace in nested:
                keys += missing_keys(trace.traces, f"{prefix}.{name}")
        else:
            keys.append(f"{prefix}.{name}")
    return sorted(set(keys))


def secret_keys(missing: ConfigFieldMissingException, prefix: str) -> set[str]:
    """The keys of `missing_keys(missing, prefix)` that dlt treats as secrets.

    A key is a secret when its field, or a section it is in, is typed as one (`dlt.secrets.value`,
    `TSecretStrValue`, any credentials spec - dlt's own rule, `is_secret_hint`). Those belong in
    `.dlt/secrets.toml`, which is not committed; the others may go in the committed `.dlt/config.toml`.

    Args:
        missing: dlt's exception (its `config` is the spec that did not resolve).
        prefix: As for `missing_keys`.

    Returns:
        Dotted keys.
    """
    return set(_secret_keys(type(missing.config), missing.traces, prefix, secret=False))


def _secret_keys(spec: Any, traces: Mapping[str, Any], prefix: str, *, secret: bool) -> Iterator[str]:
    fields = (
        spec.get_resolvable_fields() if isinstance(spec, type) and issubclass(spec, BaseConfiguration) else {}
    )
    for name, field_traces in traces.items():
        hint = fields.get(name)
        field_secret = secret or (hint is not None and is_secret_hint(hint))
        nested = [t for t in field_traces if isinstance(t, LookupTraces)]
        if nested:
            inner = extract_inner_hint(hint) if hint is not None else None
            for trace in nested:
                yield from _secret_keys(inner, trace.traces, f"{prefix}.{name}", secret=field_secret)
        elif field_secret:
            yield f"{prefix}.{name}"


# Where secrets go (the file is gitignored; the example beside it is committed).
_UNCOMMITTED_FILE = ".dlt/secrets.toml (see .dlt/secrets.toml.example)"


def where_to_set(keys: Sequence[str], secrets: Iterable[str]) -> str:
    """A sentence saying where to set `keys`: secrets in `.dlt/secrets.toml`, the rest in `.dlt/config.toml`.

    `.dlt/config.toml` is committed, so it is suggested only for keys that are not secrets.

    Args:
        keys: The keys to set (at least one).
        secrets: Which of them are secrets (`secret_keys`).

    Returns:
        E.g. "Put it in .dlt/secrets.toml (see .dlt/secrets.toml.example) or set the environment
        variable SOURCES__HUBSPOT__ACCESS_TOKEN."
    """
    secret = [key for key in keys if key in set(secrets)]
    plain = [key for key in keys if key not in secret]
    if secret and plain:
        where = f"Put {listing(secret)} in {_UNCOMMITTED_FILE} and {listing(plain)} in .dlt/config.toml"
    else:
        where = f"Put {'it' if len(keys) == 1 else 'them'} in {_UNCOMMITTED_FILE if secret else '.dlt/config.toml'}"
    variables = "the environment variable" if len(keys) == 1 else "the environment variables"
    return f"{where}, or set {variables} {listing([env_names([key]) for key in keys])}."


def is_placeholder(value: object) -> bool:
    """Whether `value` is one of `.dlt/secrets.toml.example`'s placeholders, such as `<host>`."""
    return isinstance(value, str) and len(value) > 2 and value.startswith("<") and value.endswith(">")


@contextmanager
def placeholders_refused(pipeline_name: str) -> Iterator[None]:
    """Refuse a setting resolved in the block that is still `.dlt/secrets.toml.example`'s placeholder.

    A copy of the example not yet filled in resolves (`host = "<host>"`), so without this a run
    fails later with a misleading message (a host that "does not parse") or takes the placeholder
    to the network (a HubSpot token). `./dev check-config` flags the same values (`utils.check`);
    both read dlt's record of what resolved from where. The error names every such key and the
    file it came from, never a value, and replaces any error the block raised because of them.

    Args:
        pipeline_name: Named in the message.

    Raises:
        ConfigurationError: A setting resolved to a placeholder (permanent: the file must be edited).
    """
    traces = get_resolved_traces()
    start = len(traces.resolved_traces)
    try:
        yield
    except ConfigFieldMissingException:
        raise  # the missing keys come first: that message says where the example is
    except Exception:
        _refuse_placeholders(pipeline_name, traces.resolved_traces[start:])
        raise
    _refuse_placeholders(pipeline_name, traces.resolved_traces[start:])


def _refuse_placeholders(pipeline_name: str, traces: Sequence[Any]) -> None:
    found = {".".join([*t.sections, t.key]): t.provider_name for t in traces if is_placeholder(t.value)}
    if not found:
        return
    keys = sorted(found)
    places = listing(sorted(set(found.values())))
    one = len(keys) == 1
    raise ConfigurationError(
        f"Pipeline '{pipeline_name}': {listing(keys)} {'is' if one else 'are'} still the example's <...> "
        f"placeholder{'' if one else 's'} (from .dlt/secrets.toml.example, set in {places}): replace "
        f"{'it with the real value' if one else 'each with the real value'} (or delete the line, if the "
        "setting is optional), or set "
        f"{'the environment variable' if one else 'the environment variables'} "
        f"{listing([env_names([key]) for key in keys])}. `./dev check-config` lists every setting."
    ) from None


def listing(items: Sequence[str]) -> str:
    """`a`, `a and b`, `a, b and c`: items for a sentence."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def env_names(keys: Iterable[str]) -> str:
    """The environment variables that set `keys`, comma separated (`a.b.c` is `A__B__C`)."""
    return ", ".join(key.upper().replace(".", "__") for key in keys)


def describe_toml_error(exc: TomlProviderReadException) -> str:
    """Which `.dlt` TOML file is malformed and where, never any of its text (it holds secrets).

    Args:
        exc: dlt's error from reading its TOML providers' files.

    Returns:
        E.g. "`.dlt/secrets.toml` is not valid TOML: line 2, column 19. ...".
    """
    for name in exc.full_paths:
        path = Path(name)
        if not path.is_file():
            continue
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as error:
            # Only the position: the parser's text may quote a character of the value.
            position = re.search(r"line (\d+), column (\d+)", str(error))
            where = f"line {position[1]}, column {position[2]}" if position else "(no position given)"
            return (
                f"{path} is not valid TOML: {where}. Fix that line (an unclosed quote or bracket, a "
                "missing `=`, a key given twice); the file's text is not shown, as it may hold secrets."
            )
        except (OSError, UnicodeDecodeError):
            return f"{path} cannot be read as UTF-8 text; check its encoding and permissions."
    return f"one of dlt's {exc.file_name} files ({', '.join(exc.full_paths)}) is not valid TOML."


@contextmanager
def toml_errors_named() -> Iterator[None]:
    """Turn dlt's error for a malformed `.dlt/*.toml` into a `ConfigurationError` naming file and line.

    dlt's `TomlProviderReadException` carries the TOML parser's message, which quotes the character
    where parsing stopped - in `secrets.toml`, a character of a secret. The error raised instead
    names only the file and the position, and is permanent (a flow does not retry it).

    Raises:
        ConfigurationError: A `.dlt` TOML file does not parse (raised without the original chained).
    """
    try:
        yield
    except TomlProviderReadException as exc:
        raise ConfigurationError(describe_toml_error(exc)) from None
