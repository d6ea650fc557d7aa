"""Constants for the products source."""

from dlt.common.schema.typing import TSchemaContractDict

# Tables extracted by default (config `sources.products.tables` overrides the list).
DEFAULT_TABLES = ("categories", "products")

# Every catalogue table has these: the application bumps `updated_at` on every change (a trigger),
# soft-deletes by setting `deleted_at`, and `id` is the primary key.
CURSOR_COLUMN = "updated_at"
PRIMARY_KEY = "id"
SOFT_DELETE_COLUMN = "deleted_at"

# Rows per Arrow batch read from PostgreSQL: large enough to amortise per-batch overhead, small
# enough that memory stays bounded (about 30 MB per batch of products).
CHUNK_SIZE = 100_000

# Measured in bench/products.py at 1M rows: connectorx (streaming Arrow batches, read in Rust)
# loads about 2x faster than the pyarrow backend and keeps decimals exact; both stream in chunks.
BACKEND = "connectorx"

# Seconds to wait for PostgreSQL to accept a connection before giving up.
CONNECT_TIMEOUT_SECONDS = 10

# New columns are welcome (added to the destination); a column whose type changes would be written
# into a variant column or coerced, so the load stops instead.
SCHEMA_CONTRACT: TSchemaContractDict = {"tables": "evolve", "columns": "evolve", "data_type": "freeze"}

# Key reconciliation (sources/products/reconcile.py): physically deleted rows are found by comparing
# ids every this many runs - a day of the hourly schedule. 0 switches it off.
RECONCILE_EVERY_RUNS = 24
# Ids per chunk on each side of the comparison.
RECONCILE_CHUNK_SIZE = 100_000
# A comparison that would delete more than this fraction of a table deletes nothing and fails: an
# upstream table that looks emptied (wrong database, a failed restore) must not empty the warehouse.
RECONCILE_MAX_DELETE_FRACTION = 0.5
