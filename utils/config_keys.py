"""The configuration keys dlt could not find, named the way a person sets them.

dlt reports a missing setting as a `ConfigFieldMissingException` whose traces nest one level per
configuration spec (the credentials inside a destination's section...). This is the one place that
turns them into keys such as `destination.snowflake.credentials.host`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dlt.common.configuration.exceptions import ConfigFieldMissingException, LookupTraces


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
