"""The sandbox: local stand-ins for every upstream system, on loopback, for tests and the main job.

Each stand-in is a real server speaking the real system's contract (HTTP status codes, pagination,
rate limits, errors; a real PostgreSQL), so sources are exercised exactly as in production - only
the address differs. Every stand-in keeps one contract (`sandbox.base.StandIn`), the HTTP ones are
served by one base (`sandbox.base.HttpStandIn`, on werkzeug), and every pipeline's stand-in is
registered one way: a module in `sandbox/standins`. `Sandbox` starts them all and says, through
`env()`, how to point the pipelines at them. Servers are imported lazily, so that
`python -m sandbox.<server>` runs each on its own without import warnings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.base import StandIn

if TYPE_CHECKING:
    from sandbox.postgres import PostgresServer


class Sandbox(StandIn):
    """Every registered stand-in (`sandbox.standins`), started and stopped together.

    Args:
        sizes: How much data a pipeline's stand-in seeds, by pipeline name (e.g. `products=2_000,
            hubspot=300`); each stand-in has its own default (sized for the main job).

    Attributes:
        postgres: The PostgreSQL server SQL stand-ins share (started first, stopped last).
        standins: Each pipeline's stand-in, by pipeline name.
    """

    def __init__(self, **sizes: int) -> None:
        from sandbox.postgres import PostgresServer
        from sandbox.standins import registered

        super().__init__()
        self.sizes = sizes
        self.postgres: PostgresServer = PostgresServer()
        self.standins = {name: factory.from_sandbox(self) for name, factory in registered().items()}

    def size(self, pipeline: str, default: int) -> int:
        """The size asked for `pipeline`'s stand-in, else `default`."""
        return self.sizes.get(pipeline, default)

    def _start(self) -> None:
        self.postgres.start()
        for standin in self.standins.values():
            standin.start()

    def _stop(self) -> None:
        for standin in reversed(self.standins.values()):
            standin.stop()
        self.postgres.stop()

    def simulate_activity(self) -> None:
        """Change some upstream data, as a working day would, so a repeated main job shows increments.

        On a first run this simply lands with the full load.
        """
        for standin in self.standins.values():
            standin.simulate_activity()

    def env(self) -> dict[str, str]:
        """Dlt configuration, as environment variables, that points each source at its stand-in.

        The values include sandbox passwords and tokens (made up per run): pass them to a process,
        never print them.
        """
        return {key: value for standin in self.standins.values() for key, value in standin.env().items()}
