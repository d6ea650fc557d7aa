"""The products pipeline's stand-in: the shop catalogue in the sandbox's PostgreSQL (`sandbox.postgres`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

from sandbox.postgres import CatalogueMutator, PostgresServer, TablesStandIn, seed_catalogue

if TYPE_CHECKING:
    from sandbox import Sandbox

DEMO_PRODUCTS = 20_000


class StandIn(TablesStandIn):
    """`categories` and `products`, seeded with `products` rows at start."""

    source = "products"
    tables = ("categories", "products")

    def __init__(self, server: PostgresServer, *, products: int = DEMO_PRODUCTS) -> None:
        super().__init__(server)
        self.products = products

    @classmethod
    def from_sandbox(cls, sandbox: Sandbox) -> Self:
        """`sandbox.size("products", 20_000)` products in the sandbox's PostgreSQL."""
        return cls(sandbox.postgres, products=sandbox.size("products", DEMO_PRODUCTS))

    def _start(self) -> None:
        seed_catalogue(self.server.dsn, products=self.products)

    def simulate_activity(self) -> None:
        """New, updated and soft-deleted products."""
        catalogue = CatalogueMutator(self.server.dsn)
        catalogue.insert_products(25)
        catalogue.update_products(100)
        catalogue.soft_delete_products(10)
