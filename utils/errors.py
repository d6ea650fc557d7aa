"""Errors shared by every layer.

The flows decide whether to retry from the type of error alone: a `PermanentPipelineError` cannot heal
by waiting (bad credentials, a rejected request, bad upstream data), so retrying it only delays the alert.
Messages name the pipeline and the setting or record at fault and say what to do - and never carry a
secret value.
"""

from __future__ import annotations


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


class MalformedPayloadError(PermanentPipelineError):
    """The upstream system answered, but the payload does not have the documented shape."""


class DestinationRejectedError(PermanentPipelineError):
    """The destination refused the data (a constraint, a type); the load was rolled back."""


class SchemaDriftError(PermanentPipelineError):
    """The upstream schema changed in a way the schema contract forbids (e.g. a column's type)."""
