"""One meaning per HTTP failure, for every HTTP source and the generator's api/saas templates.

| What happened | Error | Retried by the flow |
|---|---|---|
| 401 or 403 | `ConfigurationError` naming the credentials setting (or the base URL for an API without one) | no |
| 404 and other 4xx (not 408/429) | `UpstreamRequestError` naming the settings to check | no |
| 408, 429, 5xx after the HTTP client's retries | `UpstreamUnavailableError` | yes |
| timeout or dropped connection after the HTTP client's retries | `UpstreamUnavailableError` | yes |
| the host refuses the connection, does not resolve, or fails TLS before any request of the run | `UpstreamUnreachableError`, within seconds | no |

The last row is `ensure_reachable`, which a source calls once before its first request: without
it dlt's HTTP client retries a refused connection for half a minute and the run ends in a long
traceback, for what is almost always a wrong URL, a stopped service or a certificate problem.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from requests import HTTPError, RequestException, Response
from requests.utils import get_environ_proxies

from utils.errors import (
    ConfigurationError,
    PipelineError,
    UpstreamRequestError,
    UpstreamUnavailableError,
    UpstreamUnreachableError,
)

# Seconds to wait for the TCP connection and TLS handshake of the reachability check.
CONNECT_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class HttpSource:
    """What an HTTP error message names for one source.

    Attributes:
        name: The source (and pipeline) name, first word of every message.
        base_url_setting: The key of the API root, e.g. `sources.currencies.base_url`.
        auth_setting: The key of the credentials, e.g. `sources.hubspot.access_token`; None for a
            public API.
        other_settings: More keys a refused request may be caused by (e.g. a base currency).
        not_loaded: What the failure means for the data, ending every message.
        hints: Extra advice per status code (e.g. which scopes a 403 means are missing).
    """

    name: str
    base_url_setting: str
    auth_setting: str | None = None
    other_settings: tuple[str, ...] = ()
    not_loaded: str = "nothing was loaded"
    hints: Mapping[int, str] = field(default_factory=dict)

    def _check(self) -> str:
        keys = [self.base_url_setting, *self.other_settings]
        return " and ".join(f"`{key}`" for key in keys)


def status_error(source: HttpSource, status: int, request: str, detail: str = "") -> PipelineError:
    """The error for an HTTP status that the client's retries did not cure.

    Args:
        source: Who asked.
        status: The HTTP status code.
        request: What was asked, e.g. `GET https://api.example.com/v1/currencies`.
        detail: The API's own explanation, if any (never a secret).

    Returns:
        The error to raise (see the module's table).
    """
    hint = f" {source.hints[status]}" if status in source.hints else ""
    said = f"HTTP {status}{detail}"
    if status in (401, 403):
        if source.auth_setting is None:
            return ConfigurationError(
                f"{source.name}: the API refused the request for credentials this source does not "
                f"send ({said}) for {request} - check that {source._check()} points at the right API; "
                f"{source.not_loaded}.{hint}"
            )
        env = source.auth_setting.upper().replace(".", "__")
        problem = "rejected the credentials" if status == 401 else "refused the credentials' permissions"
        return ConfigurationError(
            f"{source.name}: the API {problem} ({said}) for {request} - set `{source.auth_setting}` "
            f"(environment variable {env}, .dlt/secrets.toml or the secrets manager) to valid "
            f"credentials; {source.not_loaded}.{hint}"
        )
    if 400 <= status < 500 and status not in (408, 429):
        return UpstreamRequestError(
            f"{source.name}: the API refused the request ({said}) for {request} - check "
            f"{source._check()}; retrying will not help.{hint}"
        )
    return UpstreamUnavailableError(
        f"{source.name}: {request} failed with {said} after retries - check the API's status and "
        f"{source._check()}, then run again; {source.not_loaded}.{hint}"
    )


def request_error(source: HttpSource, exc: RequestException, request: str, detail: str = "") -> PipelineError:
    """The error for a request that failed after the client's retries, with or without a response.

    Args:
        source: Who asked.
        exc: What `requests` raised.
        request: What was asked.
        detail: The API's own explanation, if any.

    Returns:
        The error to raise; the caller chains `exc`.
    """
    response: Response | None = exc.response if isinstance(exc, HTTPError) else None
    if response is not None:
        return status_error(source, response.status_code, request, detail)
    return UpstreamUnavailableError(
        f"{source.name}: {request} failed after retries ({type(exc).__name__}) - is the API reachable "
        f"from here? Check {source._check()}; {source.not_loaded}."
    )


def ensure_reachable(source: HttpSource, url: str, timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
    """Connect to `url`'s host once (TCP, and TLS for https) and fail at once if that cannot work.

    Skipped when a proxy is configured for the URL (the proxy, not the host, is then connected to).

    Args:
        source: Who asks (names the setting to check).
        url: Any URL on the API's host.
        timeout: Seconds for the connection and handshake; a timeout is left to the client's retries.

    Raises:
        UpstreamUnreachableError: The host name does not resolve, the connection is refused, or the
            TLS handshake fails (an untrusted or mismatched certificate).
    """
    parts = urlsplit(url)
    host = parts.hostname
    if not host or parts.scheme not in ("http", "https") or get_environ_proxies(url):
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    where = f"{host}:{port}"
    check = f"check {source._check()}; {source.not_loaded}"
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if parts.scheme == "https":
                context = ssl.create_default_context()
                with context.wrap_socket(sock, server_hostname=host):
                    pass
    except socket.gaierror as exc:
        raise UpstreamUnreachableError(
            f"{source.name}: the host {host} does not resolve ({exc.strerror}) - {check}."
        ) from None
    except ConnectionRefusedError:
        raise UpstreamUnreachableError(
            f"{source.name}: {where} refused the connection (nothing listens there) - is the service "
            f"running? Then {check}."
        ) from None
    except ssl.SSLError as exc:
        reason = getattr(exc, "verify_message", None) or exc.reason or type(exc).__name__
        raise UpstreamUnreachableError(
            f"{source.name}: the TLS handshake with {where} failed ({reason}) - {check}."
        ) from None
    except OSError:  # a timeout or a network that is down: transient, the client's retries decide
        return
