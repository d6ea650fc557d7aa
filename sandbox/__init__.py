"""The sandbox: local stand-ins for every upstream system, on loopback, for tests and the main job.

Each stand-in is a real server speaking the real system's contract (HTTP status codes, pagination,
rate limits, errors; a real PostgreSQL), so sources are exercised exactly as in production - only
the address differs. `Sandbox` starts them together and says, through `env()`, how to point the
pipelines at them. The servers themselves live in submodules and are imported lazily, so that
`python -m sandbox.<server>` runs each on its own without import warnings.
"""

from __future__ import annotations

import secrets
from types import TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from sandbox.frankfurter import FrankfurterServer
    from sandbox.hubspot import HubSpotServer
    from sandbox.postgres import PostgresServer

# Sizes for the main job: big enough to show increments and paging, small enough to load in seconds.
DEMO_PRODUCTS = 20_000
DEMO_CONTACTS = 2_000


class Sandbox:
    """Every upstream stand-in the pipelines need, started and stopped together.

    Args:
        products: Rows to seed into the PostgreSQL catalogue.
        contacts: Contacts in the HubSpot portal.
    """

    def __init__(self, *, products: int = DEMO_PRODUCTS, contacts: int = DEMO_CONTACTS) -> None:
        from sandbox.frankfurter import FrankfurterServer
        from sandbox.hubspot import HubSpotServer
        from sandbox.postgres import PostgresServer

        self.products = products
        self.hubspot_token = f"pat-sandbox-{secrets.token_hex(8)}"
        self.frankfurter: FrankfurterServer = FrankfurterServer()
        self.postgres: PostgresServer = PostgresServer()
        self.hubspot: HubSpotServer = HubSpotServer(token=self.hubspot_token, contacts=contacts)
        from sandbox.standins import load_standins

        self.standins = load_standins(self)

    def start(self) -> Self:
        """Start every server (each on a free loopback port) and seed the database."""
        from sandbox.postgres import seed_catalogue

        try:
            self.frankfurter.start()
            self.hubspot.start()
            self.postgres.start()
            seed_catalogue(self.postgres.dsn, products=self.products)
            for standin in self.standins:
                standin.start()
        except BaseException:
            self.stop()
            raise
        return self

    def simulate_activity(self) -> None:
        """Change some upstream data, as a working day would, so a repeated main job shows increments.

        The catalogue gets new, updated and soft-deleted products; the CRM modified, new and
        archived contacts. On a first run this simply lands with the full load.
        """
        from sandbox.postgres import CatalogueMutator

        catalogue = CatalogueMutator(self.postgres.dsn)
        catalogue.insert_products(25)
        catalogue.update_products(100)
        catalogue.soft_delete_products(10)
        self.hubspot.modify_contacts(40)
        self.hubspot.add_contacts(10)
        self.hubspot.archive_contacts(5)
        for standin in self.standins:
            standin.simulate_activity()

    def stop(self) -> None:
        """Stop every server; safe to call more than once."""
        for standin in self.standins:
            standin.stop()
        self.frankfurter.stop()
        self.hubspot.stop()
        self.postgres.stop()

    def env(self) -> dict[str, str]:
        """Dlt configuration, as environment variables, that points each source at its stand-in.

        The values include sandbox passwords and tokens (made up per run): pass them to a process,
        never print them.
        """
        pg = self.postgres.dlt_credentials()
        env = {
            "SOURCES__CURRENCIES__BASE_URL": self.frankfurter.base_url,
            "SOURCES__EXCHANGE_RATES__BASE_URL": self.frankfurter.base_url,
            "SOURCES__HUBSPOT__BASE_URL": self.hubspot.base_url,
            "SOURCES__HUBSPOT__ACCESS_TOKEN": self.hubspot_token,
        }
        env.update({f"SOURCES__PRODUCTS__CREDENTIALS__{k.upper()}": str(v) for k, v in pg.items()})
        for standin in self.standins:
            env.update(standin.env())
        return env

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
