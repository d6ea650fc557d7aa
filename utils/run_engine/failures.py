"""Which failures can heal by waiting, and the error a person reads when one cannot.

The rule, applied to an exception and its chain of causes, outermost first:

* a stop by a signal (Ctrl-C's `KeyboardInterrupt`, dlt's `SignalReceivedException` for the SIGINT
  or SIGTERM it intercepts during normalize and load, our `RunStopped`) is neither: the process
  was asked to stop, nothing is wrong with a setting, the data or the code. It is never permanent;
  the engine turns it into a `RunStopped` (`stop_signal` says which signal), which no retry sees;
* our `PermanentPipelineError`s (a setting, bad upstream data, a rejected load) are permanent;
  our other `PipelineError`s (`UpstreamUnavailableError`...) are transient - except the plain
  `PipelineError` the engine wraps a step failure in, which is decided by its cause;
* dlt's `TransientException`s (a dropped connection, a destination blip) are transient;
* dlt's wrappers (`PipelineStepFailed`, `ResourceExtractionError`...) are decided by their cause;
* every other dlt exception is deterministic - the same data, settings and code raise it again on
  every retry: terminal destination errors, configuration values, schema contract violations,
  names that collide after normalisation, incremental cursor problems, invalid resources - so it
  is permanent. `TRANSIENT_DLT_ERRORS` lists the few dlt exceptions that are not marked transient
  but may heal (an unclassified database error);
* network errors (`OSError`, `requests`' exceptions, timeouts) are transient, and so is anything
  else we do not know: retrying an unknown error costs minutes, not data.

`tests/utils/test_run_engine.py` applies the rule to every exception class dlt defines.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Literal

from dlt.common.destination.exceptions import DestinationException
from dlt.common.exceptions import DltException, SignalReceivedException, TerminalException, TransientException
from dlt.destinations.exceptions import DatabaseException
from dlt.extract.exceptions import PipeItemProcessingError, ResourceExtractionError
from dlt.load.exceptions import LoadClientJobException
from dlt.normalize.exceptions import NormalizeJobFailed
from dlt.pipeline.exceptions import PipelineStepFailed

from utils.errors import PermanentPipelineError, PipelineError, RunStopped

Kind = Literal["permanent", "transient", "wrapper", "stopped"]

# dlt exceptions that only carry another one: the cause decides.
WRAPPER_DLT_ERRORS: tuple[type[BaseException], ...] = (
    PipelineStepFailed,
    ResourceExtractionError,
    PipeItemProcessingError,
    NormalizeJobFailed,
    LoadClientJobException,
)
# dlt exceptions marked neither transient nor terminal that may heal: a database error dlt could
# not classify (its SQL clients mark the ones they recognise), a destination error of no kind.
TRANSIENT_DLT_ERRORS: tuple[type[BaseException], ...] = (DatabaseException, DestinationException)


def classify_type(kind: type[BaseException]) -> Kind:
    """Classify one exception type by the rule in the module docstring (its cause not considered).

    Args:
        kind: An exception class.

    Returns:
        "permanent", "transient", "wrapper" (decided by the cause) or "stopped" (by a signal).
    """
    if issubclass(kind, KeyboardInterrupt):  # dlt's SignalReceivedException is one, and terminal
        return "stopped"
    if issubclass(kind, PermanentPipelineError):
        return "permanent"
    if issubclass(kind, PipelineError):
        return "wrapper" if kind is PipelineError else "transient"
    if issubclass(kind, TransientException):
        return "transient"
    if issubclass(kind, TerminalException):
        return "permanent"
    if issubclass(kind, WRAPPER_DLT_ERRORS):
        return "wrapper"
    if issubclass(kind, DltException) or kind.__module__.startswith("dlt."):
        # An exact unclassified database / destination error may heal; their subclasses are named.
        return "transient" if kind in TRANSIENT_DLT_ERRORS else "permanent"
    return "wrapper"  # not ours, not dlt's: the cause may say more; unknown at the end = transient


def is_permanent(exc: BaseException) -> bool:
    """Whether `exc` (with its chain of causes) fails the same way on every retry.

    Args:
        exc: The failure.

    Returns:
        True if no retry can fix it; False for a stop by a signal, which is no failure at all.
    """
    for current in chain(exc):
        kind = classify_type(type(current))
        if kind != "wrapper":
            return kind == "permanent"
    return False


def stop_signal(exc: BaseException) -> int | None:
    """The signal that stopped the run, if `exc` (or a cause) is a stop rather than a failure.

    A stop is dlt's `SignalReceivedException` (the SIGINT or SIGTERM dlt intercepts while it
    normalises or loads, kept until the step can stop safely), a `KeyboardInterrupt` (Ctrl-C
    elsewhere) or a host's own signal exception (Prefect's `TerminationSignal`: a `BaseException`,
    not an `Exception`, carrying the signal number).

    Args:
        exc: The failure.

    Returns:
        The signal number (0 when dlt does not say which); None when `exc` is not a stop.
    """
    for current in chain(exc):
        if isinstance(current, SignalReceivedException):
            return max(current.signal_code, 0)
        if isinstance(current, RunStopped):
            return current.signal_number
        if isinstance(current, KeyboardInterrupt):
            return int(signal.SIGINT)
        number = getattr(current, "signal", None)
        if not isinstance(current, Exception) and isinstance(number, int):
            return number
    return None


def chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then its causes (explicit `__cause__` first, else `__context__`), each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def table_of(exc: BaseException) -> str | None:
    """The table (or resource) a dlt exception in the chain names, if any."""
    for current in chain(exc):
        for attribute in ("table_name", "resource_name", "pipe_name"):
            value = getattr(current, attribute, None)
            if isinstance(value, str) and value:
                return value
    return None


def first_cause_line(exc: BaseException) -> str:
    """The innermost non-wrapper error of the chain as `Type: first line`, for a one-line message."""
    decisive = next((c for c in chain(exc) if classify_type(type(c)) != "wrapper"), None)
    if decisive is None:
        decisive = list(chain(exc))[-1]
    text = next((line.strip() for line in str(decisive).splitlines() if line.strip()), "")
    return f"{type(decisive).__name__}: {text}"[:500]
