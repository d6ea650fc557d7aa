"""Errors shared by every layer.

The flows decide whether to retry from the type of error alone: a `PermanentPipelineError` cannot heal
by waiting (bad credentials, a rejected request, bad upstream data), so retrying it only delays the alert.
Messages name the pipeline and the setting or record at fault and say what to do - and never carry a
secret value.
"""

from __future__ import annotations

from typing import TypeVar


class PipelineError(RuntimeError):
    """Base class for errors raised by our sources and pipelines."""


class PermanentPipelineError(PipelineError):
    """An error that a retry cannot fix: it needs a person to change a setting or the data."""


class ConfigurationError(PermanentPipelineError):
    """A setting or secret the pipeline needs is missing or invalid."""


class UpstreamUnavailableError(PipelineError):
    """The upstream system kept failing (5xx, 429, timeouts, unreachable) after the HTTP retries.

    Transient by nature, so the flows retry it later.
    """


class UpstreamRequestError(PermanentPipelineError):
    """The upstream system rejected a request in a way that retrying will not change (e.g. 401, 404)."""


class DestinationUnavailableError(PipelineError):
    """The destination cannot be reached or opened right now (network down, a file locked by another process).

    Transient by nature, so the flows retry it later; the message names the setting or file to check.
    """


class MalformedPayloadError(PermanentPipelineError):
    """The upstream system answered, but the payload does not have the documented shape."""


class DestinationRejectedError(PermanentPipelineError):
    """The destination refused the data (a constraint, a type); the load was rolled back."""


class SchemaDriftError(PermanentPipelineError):
    """The upstream schema changed in a way the schema contract forbids (e.g. a column's type)."""


class DeterministicError(PermanentPipelineError):
    """dlt failed in a way that repeats on every retry (a name collision, a cursor problem, a bad value)."""


E = TypeVar("E", bound=BaseException)


def find_cause(exc: BaseException, kind: type[E]) -> E | None:
    """Return the first exception of type `kind` in `exc`'s chain of causes, or None.

    Args:
        exc: The exception to inspect.
        kind: The type to look for.

    Returns:
        The first match, `exc` itself included.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class RunStopped(KeyboardInterrupt):
    """A run stopped from outside by a signal: Ctrl-C (SIGINT), or SIGTERM (a shutdown, a deploy).

    Not a failure: nothing is wrong with a setting, the data or the code, and a retry in a process
    that is being stopped is pointless. Like dlt's own `SignalReceivedException` and Python's
    Ctrl-C it is a `KeyboardInterrupt`, not an `Exception`: `except Exception` does not catch it,
    and Prefect ends the task run Crashed without retrying it. The message says which signal
    stopped which step and what became of the data it had extracted.

    Attributes:
        signal_number: The signal (2 for SIGINT, 15 for SIGTERM); 0 when not known.
    """

    def __init__(self, message: str, signal_number: int) -> None:
        super().__init__(message)
        self.signal_number = signal_number


class UpstreamUnreachableError(PermanentPipelineError):
    """The upstream host cannot be connected to at all: it does not resolve, refuses, or fails TLS.

    Raised on a run's first connection only, where it almost always means a wrong URL or host, a
    service that is not running or a certificate problem: the run fails in seconds instead of
    retrying for minutes, and says which setting to check.
    """
