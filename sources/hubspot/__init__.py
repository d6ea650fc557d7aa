"""HubSpot source: CRM contacts, incremental, rate-limit aware, with deletions applied."""

from sources.hubspot.source import hubspot_source

__all__ = ["hubspot_source"]
