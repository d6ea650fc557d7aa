"""The configuration keys dlt could not find, and the files it could not read, named for a person.

dlt reports a missing setting as a `ConfigFieldMissingException` whose traces nest one level per
configuration spec (the credentials inside a destination's section...). This is the one place that
turns them into keys such as `destination.snowflake.credentials.host`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dlt.common.configuration.exceptions import ConfigFieldMissingException, LookupTraces
from dlt.common.configuration.providers.toml import TomlProviderReadException

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
