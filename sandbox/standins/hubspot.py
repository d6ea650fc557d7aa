"""The hubspot pipeline's stand-in: a HubSpot CRM portal (`sandbox.hubspot`) with a made-up token."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any, Self

from sandbox.hubspot import HubSpotServer

if TYPE_CHECKING:
    from sandbox import Sandbox

DEMO_CONTACTS = 2_000


class StandIn(HubSpotServer):
    """A portal behind a private app token made up per instance; `options` as `HubSpotServer`'s."""

    source = "hubspot"

    def __init__(self, *, contacts: int = DEMO_CONTACTS, **options: Any) -> None:
        self.token = f"pat-sandbox-{secrets.token_hex(8)}"
        super().__init__(token=self.token, contacts=contacts, **options)

    @classmethod
    def from_sandbox(cls, sandbox: Sandbox) -> Self:
        """A portal of `sandbox.size("hubspot", 2_000)` contacts."""
        return cls(contacts=sandbox.size("hubspot", DEMO_CONTACTS))

    def env(self) -> dict[str, str]:
        """The base URL and the token (a sandbox secret: never print it)."""
        return {**super().env(), "SOURCES__HUBSPOT__ACCESS_TOKEN": self.token}

    def simulate_activity(self) -> None:
        """Modified, new and archived contacts."""
        self.modify_contacts(40)
        self.add_contacts(10)
        self.archive_contacts(5)
