"""The products source's resources and SQL, against the sandbox PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from sandbox.postgres import CatalogueMutator, PostgresServer
from sources.products import products_source
from utils.sql_types import plan_table


def test_one_incremental_merge_resource_per_table(catalogue: CatalogueMutator) -> None:
    source = products_source()
    assert source.section == "products"
    assert set(source.resources) == {"categories", "products"}
    for resource in source.resources.values():
        schema = resource.compute_table_schema()
        assert schema["write_disposition"] == "merge"
        assert schema["columns"]["id"]["primary_key"] is True
        assert schema["columns"]["deleted_at"]["hard_delete"] is True


def test_tables_are_configurable(catalogue: CatalogueMutator) -> None:
    assert set(products_source(tables=["categories"]).resources) == {"categories"}


def test_nested_columns_are_serialised_by_postgres(
    postgres_server: PostgresServer, catalogue: CatalogueMutator
) -> None:
    engine = sa.create_engine(postgres_server.dsn)
    table = sa.Table("products", sa.MetaData(), autoload_with=engine)
    plan = plan_table(engine, "products", pipeline="products")
    query = plan.adapt_query(sa.select(table).where(table.c.id < 3), table)
    sql = str(query.compile(engine))
    assert "CAST(products.attributes AS TEXT) AS attributes" in sql
    assert "CAST(to_jsonb(products.tags) AS TEXT) AS tags" in sql
    assert "products.id <" in sql  # the filter dlt adds (the incremental cursor) is kept
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    assert [r["id"] for r in rows] == [1, 2]
    assert all(r["attributes"] is None or isinstance(r["attributes"], str) for r in rows)
    engine.dispose()
