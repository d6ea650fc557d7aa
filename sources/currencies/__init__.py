"""Currencies source: the ISO currency list from a Frankfurter-compatible API."""

from sources.currencies.source import currencies_source

__all__ = ["currencies_source"]
