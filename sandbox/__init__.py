"""The sandbox: local stand-ins for every upstream system, on loopback, for tests and the main job.

Each stand-in is a real server speaking the real system's contract (HTTP status codes, pagination,
rate limits, errors), so sources are exercised exactly as in production - only the address differs.
`Sandbox` starts them together and says, through `env()`, how to point the pipelines at them.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sandbox.frankfurter import FrankfurterServer


class Sandbox:
    """Every upstream stand-in the pipelines need, started and stopped together."""

    def __init__(self) -> None:
        self.frankfurter = FrankfurterServer()

    def start(self) -> Self:
        """Start every server (each on a free loopback port)."""
        self.frankfurter.start()
        return self

    def stop(self) -> None:
        """Stop every server."""
        self.frankfurter.stop()

    def env(self) -> dict[str, str]:
        """Dlt configuration, as environment variables, that points each source at its stand-in."""
        return {"SOURCES__CURRENCIES__BASE_URL": self.frankfurter.base_url}

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
