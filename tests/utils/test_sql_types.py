"""Arrow batches narrowed to the planned column types, exactly or not at all (utils/sql_types.py)."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pytest

from utils.errors import DeterministicError, PermanentPipelineError
from utils.sql_types import ColumnPlan, TablePlan

PLAN = TablePlan(
    pipeline="products",
    table="products",
    columns=(
        ColumnPlan("id", "bigint", "int8", "native", {"data_type": "bigint", "precision": 64}),
        ColumnPlan("name", "text", "text", "native", {"data_type": "text"}),
        ColumnPlan(
            "price",
            "numeric(12,2)",
            "numeric",
            "native",
            {"data_type": "decimal", "precision": 12, "scale": 2},
        ),
        ColumnPlan("stock", "integer", "int4", "native", {"data_type": "bigint", "precision": 32}),
        ColumnPlan("rank", "smallint", "int2", "native", {"data_type": "bigint", "precision": 16}),
        # Wider than the reader's decimal: PostgreSQL sends text, which must stay text.
        ColumnPlan(
            "ratio",
            "numeric(30,20)",
            "numeric",
            "cast",
            {"data_type": "decimal", "precision": 30, "scale": 20},
            cast="text",
        ),
    ),
)


def reader_batch(price: str = "9999999999.99") -> pa.RecordBatch:
    """A batch as connectorx reads it: every numeric decimal128(38,10), every integer int64."""
    return pa.RecordBatch.from_pydict(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "name": ["a", "b", None],
            "price": pa.array([Decimal(price), Decimal("0.01"), Decimal("-12.50")], pa.decimal128(38, 10)),
            "stock": pa.array([2**31 - 1, None, -(2**31)], pa.int64()),
            "rank": pa.array([-(2**15), 0, 2**15 - 1], pa.int64()),
            "ratio": ["0.12345678901234567890", None, "1"],
        }
    )


def test_widened_columns_are_cast_to_the_planned_types_with_every_value_unchanged() -> None:
    batch = reader_batch()
    narrowed = PLAN.narrow_arrow_types(batch)
    assert narrowed.schema.field("price").type == pa.decimal128(12, 2)
    assert narrowed.schema.field("stock").type == pa.int32()
    assert narrowed.schema.field("rank").type == pa.int16()
    assert narrowed.schema.field("ratio").type == pa.string()  # text stays text
    assert narrowed.schema.field("id").type == pa.int64()
    assert narrowed.to_pylist() == batch.to_pylist()  # the same values, nothing rounded
    # Columns left as they are not copied.
    assert narrowed.column("name").buffers()[1].address == batch.column("name").buffers()[1].address
    # Tables too (dlt's connectorx loader yields tables), and anything else passes unchanged.
    table = pa.Table.from_batches([batch])
    assert PLAN.narrow_arrow_types(table).schema.field("price").type == pa.decimal128(12, 2)
    row = {"price": Decimal("1.5")}
    assert PLAN.narrow_arrow_types(row) is row


def test_a_batch_already_in_the_planned_types_is_returned_as_it_is() -> None:
    narrowed = PLAN.narrow_arrow_types(reader_batch())
    assert PLAN.narrow_arrow_types(narrowed) is narrowed


@pytest.mark.parametrize(
    ("column", "batch"),
    [
        ("price", reader_batch(price="1.005")),  # a third decimal: would be rounded
        ("price", reader_batch(price="10000000000.00")),  # 13 digits in a numeric(12,2)
        (
            "stock",
            reader_batch().set_column(3, pa.field("stock", pa.int64()), pa.array([2**31, 0, 0], pa.int64())),
        ),
    ],
)
def test_a_value_that_does_not_fit_is_a_permanent_error_naming_table_and_column(
    column: str, batch: pa.RecordBatch
) -> None:
    with pytest.raises(DeterministicError) as raised:
        PLAN.narrow_arrow_types(batch)
    assert isinstance(raised.value, PermanentPipelineError)
    message = str(raised.value)
    assert "Pipeline 'products'" in message
    assert f"table products, column {column}" in message
