"""Products source: the product catalogue from PostgreSQL, incremental on `updated_at`."""

from sources.products.source import products_source

__all__ = ["products_source"]
