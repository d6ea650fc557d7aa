"""Exchange rates source: the ECB's daily reference rates history from a Frankfurter-compatible API."""

from sources.exchange_rates.source import exchange_rates_source

__all__ = ["exchange_rates_source"]
