"""PostgreSQL column types, mapped so that every value arrives exact - or the column is refused.

dlt's `sql_table` reads PostgreSQL through a backend (connectorx's Rust reader, or SQLAlchemy with
pyarrow) and types the destination columns from SQLAlchemy's reflection. Measured with dlt 1.31 and
connectorx 0.4.6, that loses or crashes on much of what PostgreSQL can hold: unconstrained `numeric`
is rounded to 10 places, `infinity` dates become made-up finite dates, `integer` widens to BIGINT,
and about forty types (`interval`, `money`, geometric, network, bit strings, `xml`, multiranges,
`timetz`, composite, `pg_lsn`, ...) make connectorx panic - a `BaseException` that escapes dlt's
error handling. This module decides, per column and before anything is read, how each one travels:

* **native** - the reader handles the type exactly (integers, floats, text, boolean, bytea, date and
  time kinds, `numeric(p,s)` within the reader's decimal): read as is, with the destination column
  typed from the source (integer width, text length, decimal precision and scale, time zone).
* **cast** - PostgreSQL converts the value server-side into something the reader takes exactly:
  `money` to `numeric(19,s)`, `oid` to `bigint`; JSON text for jsonb, json, arrays and composite
  types (landing as JSON columns); the type's own text form for everything else (unconstrained
  `numeric`, `interval`, ranges, geometric, network, bit strings, `xml`, `tsvector`, `pg_lsn`, ...)
  - PostgreSQL's output function round-trips, so the text is exact. A `numeric(p,s)` that fits a
  38-digit decimal but not the reader's DECIMAL(38,10) is sent as text into a DECIMAL(p,s) column.
* **special values** - `+-infinity` dates and timestamps, years outside 1 to 9999, `NaN` in a
  `numeric(p,s)` and the time `24:00:00` have no equal in the destination types (Snowflake has no infinite timestamps, no
  decimal holds NaN). They load as NULL, and the row's `_pg_special_values` column holds the real
  value as JSON, e.g. `{"valid_to": "infinity"}` - the same on DuckDB and Snowflake, never a value
  that looks real. The column is only written when a batch has such a value.
* **refused** - a type that is not built into PostgreSQL (an extension's type): the table is
  refused before anything is read, with `UnsupportedColumnTypeError` naming table, column, type.

`guarded_loader_class` wraps the backend's loader so that a panic from a native reader becomes a
`NativeReaderPanicError` (permanent, naming the table) instead of crashing the process.

Usage with `sql_table` (see `sources/products/source.py`)::

    plan = plan_table(engine, "products", pipeline="products")
    plan.check()  # raises UnsupportedColumnTypeError before anything is read
    resource = sql_table(credentials=engine, table="products", backend="connectorx",
                         reflection_level="full", query_adapter_callback=plan.adapt_query,
                         type_adapter_callback=reflection_type_adapter,
                         table_loader_class=guarded_loader_class("connectorx", plan), ...)
    plan.apply(resource)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import sqlalchemy as sa
from dlt.common.schema.typing import TColumnSchema
from dlt.sources import DltResource
from dlt.sources.sql_database import BaseTableLoader
from dlt.sources.sql_database.helpers import get_table_loader_class
from sqlalchemy.dialects import postgresql

from utils.errors import DeterministicError, PermanentPipelineError

# The per-row column that records values the destination types cannot hold (see module docstring).
SPECIAL_VALUES_COLUMN = "_pg_special_values"

# The decimal connectorx 0.4.6 reads every `numeric` into: decimal128(38, 10). A numeric(p, s) with
# s <= 10 and at most 28 integer digits is exact in it; anything wider panics or loses digits.
READER_DECIMAL_SCALE = 10
READER_DECIMAL_INTEGER_DIGITS = 28
# Snowflake's NUMBER (and DuckDB's DECIMAL) hold at most 38 digits.
MAX_DECIMAL_PRECISION = 38

Handling = Literal["native", "cast", "refused"]

# Built-in base types read as they are; value: dlt column hints (integer widths in bits, as dlt's
# DuckDB type mapper reads them: 16 -> SMALLINT, 32 -> INTEGER, 64 -> BIGINT).
_NATIVE: dict[str, TColumnSchema] = {
    "int2": {"data_type": "bigint", "precision": 16},
    "int4": {"data_type": "bigint", "precision": 32},
    "int8": {"data_type": "bigint", "precision": 64},
    # dlt has one floating type: real (float4) lands as a double, which holds every float4 exactly.
    "float4": {"data_type": "double"},
    "float8": {"data_type": "double"},
    "text": {"data_type": "text"},
    "varchar": {"data_type": "text"},
    "bpchar": {"data_type": "text"},
    "bool": {"data_type": "bool"},
    "bytea": {"data_type": "binary"},
    "date": {"data_type": "date"},
    "timestamp": {"data_type": "timestamp", "timezone": False},
    "timestamptz": {"data_type": "timestamp", "timezone": True},
    "time": {"data_type": "time"},
}

# Types that can hold a value no destination type can: the test for it and the replacement (NULL).
# Dates and timestamps: the infinities, and years outside 1 to 9999 (BC dates, years past 9999),
# which Snowflake does not hold and connectorx cannot decode beyond about 262,000 AD.
_SPECIAL_TESTS = {
    "date": "(NOT isfinite({c}) OR {c} < '0001-01-01'::date OR {c} > '9999-12-31'::date)",
    "timestamp": (
        "(NOT isfinite({c}) OR {c} < '0001-01-01 00:00:00'::timestamp"
        " OR {c} > '9999-12-31 23:59:59.999999'::timestamp)"
    ),
    "timestamptz": (
        "(NOT isfinite({c}) OR {c} < '0001-01-01 00:00:00+00'::timestamptz"
        " OR {c} > '9999-12-31 23:59:59.999999+00'::timestamptz)"
    ),
    "numeric": "{c} = 'NaN'::numeric",
    "time": "{c} = '24:00:00'::time",
}

# Built-in types whose value is better as a number than as text: cast server-side to this type.
_CAST_TO_INTEGER = {"oid": "bigint"}
# Built-in types sent as JSON (the reader gets text, the destination column is JSON).
_JSON_TYPES = {"json", "jsonb"}
# Built-in "vector" types that look like arrays to the catalogue but have no JSON form of their own.
_TEXT_VECTORS = {"int2vector", "oidvector"}


class UnsupportedColumnTypeError(PermanentPipelineError):
    """A source column has a type that cannot be loaded exactly; nothing of the run was read."""


class NativeReaderPanicError(PermanentPipelineError):
    """A native (Rust) reader panicked on a table; nothing of that run is loaded."""


@dataclass(frozen=True)
class ColumnPlan:
    """How one source column travels to the destination.

    Attributes:
        name: Column name.
        declared: The type as declared (`format_type`, domains by name).
        base: The base type's name after resolving domains (e.g. `numeric`, `_int4`, `mood`).
        handling: native, cast or refused.
        hints: dlt column hints (data type, precision, scale, time zone).
        cast: SQL type to cast to server-side (`text`, `bigint`, `numeric(19,2)`), `json` for JSON
            text, or None for none.
        special: SQL test (with `{c}` for the column) for a value the destination cannot hold, or None.
        reason: Why the column is refused (refused columns only).
    """

    name: str
    declared: str
    base: str
    handling: Handling
    hints: TColumnSchema = field(default_factory=lambda: TColumnSchema())
    cast: str | None = None
    special: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class TablePlan:
    """The plan for one table: a `ColumnPlan` per column, in table order."""

    pipeline: str
    table: str
    columns: tuple[ColumnPlan, ...]

    def column(self, name: str) -> ColumnPlan:
        """The plan of column `name`."""
        return next(c for c in self.columns if c.name == name)

    @property
    def refused(self) -> list[ColumnPlan]:
        """Columns that cannot be loaded exactly."""
        return [c for c in self.columns if c.handling == "refused"]

    def check(self) -> None:
        """Refuse the table if any column is refused.

        Raises:
            UnsupportedColumnTypeError: Names every refused column with its type and the remedy.
        """
        refused = self.refused
        if refused:
            listed = "; ".join(f"{self.table}.{c.name} ({c.declared}): {c.reason}" for c in refused)
            raise UnsupportedColumnTypeError(
                f"Pipeline '{self.pipeline}': cannot load {listed}. Nothing was read. Cast the column "
                "upstream to a built-in type (e.g. in a view), or add a mapping for the type to "
                "utils/sql_types.py."
            )

    def column_hints(self) -> dict[str, TColumnSchema]:
        """Column hints for dlt, every column (they override SQLAlchemy's reflection)."""
        return {c.name: {"name": c.name, **c.hints} for c in self.columns if c.handling != "refused"}

    def apply(self, resource: DltResource) -> None:
        """Type the resource's columns from the plan, narrow Arrow batches to it, drop empty specials.

        Args:
            resource: The `sql_table` resource built with `adapt_query`.
        """
        resource.apply_hints(columns=self.column_hints())
        if self._arrow_types:
            resource.add_map(self.narrow_arrow_types)
        if any(c.special for c in self.columns):
            resource.add_map(drop_empty_special_values)

    def arrow_types(self) -> dict[str, Any]:
        """The Arrow type of each column the reader widens beyond its planned type.

        connectorx reads every `numeric` into decimal128(38,10) and `smallint`/`integer` into int64.
        Written like that, the Parquet files are larger and the destination converts every value
        on load (DuckDB's DECIMAL(38,10) to DECIMAL(12,2) conversion was about a third of its
        INSERT's CPU time for the products table - bench/products.py, issue 14).

        Returns:
            Column name -> the Arrow type of its planned destination type (decimals and narrow
            integers; every other column travels as the reader gives it).
        """
        import pyarrow as pa

        types: dict[str, Any] = {}
        for column in self.columns:
            hints = column.hints
            if column.handling == "refused" or column.cast == "text":
                continue
            if hints.get("data_type") == "decimal" and "precision" in hints and "scale" in hints:
                types[column.name] = pa.decimal128(hints["precision"], hints["scale"])
            elif hints.get("data_type") == "bigint" and hints.get("precision") in (16, 32):
                types[column.name] = pa.int16() if hints.get("precision") == 16 else pa.int32()
        return types

    def narrow_arrow_types(self, item: Any) -> Any:
        """Cast an Arrow batch's widened columns to their planned types - exactly, or not at all.

        Arrow's safe cast refuses a value that would lose a digit or overflow, so a value is never
        rounded; the source column's own type makes that impossible short of a reader bug.

        Args:
            item: An Arrow table or record batch; anything else passes unchanged.

        Returns:
            The item with the columns of `arrow_types` cast (other columns not copied).

        Raises:
            DeterministicError: A value does not fit its planned type (names table and column).
        """
        schema = getattr(item, "schema", None)
        if schema is None or not hasattr(item, "column_names"):
            return item
        import pyarrow as pa
        import pyarrow.compute as pc

        for name, target in self._arrow_types.items():
            index = schema.get_field_index(name)
            if index < 0:
                continue
            field_ = schema.field(index)
            current = field_.type
            if current == target or not (pa.types.is_decimal(current) or pa.types.is_integer(current)):
                continue
            try:
                column = pc.cast(item.column(index), target, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                raise DeterministicError(
                    f"Pipeline '{self.pipeline}': table {self.table}, column {name}: a value read as "
                    f"{current} does not fit the column's type {target} ({error}). Nothing of this run "
                    "was loaded; check the column's declared type upstream."
                ) from None
            item = item.set_column(index, field_.with_type(target), column)
            schema = item.schema
        return item

    @cached_property
    def _arrow_types(self) -> dict[str, Any]:
        return self.arrow_types()

    def adapt_query(self, query: sa.Select[Any], table: sa.Table) -> sa.Select[Any]:
        """Rewrite dlt's SELECT so PostgreSQL sends each column in the planned form.

        The WHERE clause dlt built (the incremental cursor) is kept and still compares the raw
        columns. Pass as `query_adapter_callback`.

        Args:
            query: The query dlt built.
            table: The reflected table.

        Returns:
            The query with the planned select list.
        """
        columns: list[sa.ColumnElement[Any]] = []
        specials: list[tuple[str, sa.ColumnElement[Any], sa.ColumnElement[Any]]] = []
        for column in table.c:
            plan = next((c for c in self.columns if c.name == column.name), None)
            if plan is None:  # a column added upstream after planning: the reader sees it raw
                columns.append(column)
                continue
            expression: sa.ColumnElement[Any] = column
            if plan.special is not None:
                test = sa.literal_column(plan.special.format(c=_quoted(table, column.name)), sa.Boolean)
                specials.append((column.name, sa.cast(column, sa.Text), test))
                expression = sa.case((test, sa.null()), else_=column)
            if plan.cast == "json":
                if isinstance(column.type, sa.JSON) or plan.base in _JSON_TYPES:
                    expression = sa.cast(expression, sa.Text)
                else:
                    expression = sa.cast(sa.func.to_jsonb(expression), sa.Text)
            elif plan.cast is not None:
                expression = sa.cast(expression, _sql_type(plan.cast))
            columns.append(expression.label(column.name))
        if specials:
            columns.append(_special_values_expression(specials).label(SPECIAL_VALUES_COLUMN))
        return query.with_only_columns(*columns)


def _sql_type(cast: str) -> sa.types.TypeEngine[Any]:
    """The SQLAlchemy type for a planned cast (`text`, `bigint` or `numeric(p,s)`)."""
    if cast == "text":
        return sa.Text()
    if cast == "bigint":
        return sa.BigInteger()
    match = re.fullmatch(r"numeric\((\d+),(\d+)\)", cast)
    if match is None:
        raise ValueError(f"unknown cast {cast!r}")
    return sa.Numeric(int(match.group(1)), int(match.group(2)))


def _quoted(table: sa.Table, column: str) -> str:
    preparer = postgresql.dialect().identifier_preparer  # type: ignore[no-untyped-call]
    prefix = f"{preparer.quote_schema(table.schema)}." if table.schema else ""
    return f"{prefix}{preparer.quote(table.name)}.{preparer.quote(column)}"


def _special_values_expression(
    specials: list[tuple[str, sa.ColumnElement[Any], sa.ColumnElement[Any]]],
) -> sa.ColumnElement[Any]:
    """`{"column": "infinity", ...}` as JSON text for a row holding special values, else NULL."""
    any_special = sa.or_(*(test for _, _, test in specials))
    objects = []
    # jsonb_build_object takes at most 100 arguments: 50 columns per call, concatenated.
    for start in range(0, len(specials), 50):
        pairs: list[Any] = []
        for name, as_text, test in specials[start : start + 50]:
            pairs += [sa.literal(name, sa.Text), sa.case((test, as_text), else_=sa.null())]
        objects.append(sa.func.jsonb_build_object(*pairs))
    combined: sa.ColumnElement[Any] = objects[0]
    for other in objects[1:]:
        combined = combined.op("||")(other)
    return sa.case((any_special, sa.cast(sa.func.jsonb_strip_nulls(combined), sa.Text)), else_=sa.null())


def drop_empty_special_values(item: Any) -> Any:
    """Drop the special-values column from an Arrow batch in which it is all NULL.

    So the destination gets the column only once a special value has been seen.

    Args:
        item: An Arrow table (connectorx, pyarrow backends) or a row (sqlalchemy backend).

    Returns:
        The item, without an all-NULL special-values column.
    """
    names = getattr(item, "column_names", None)
    if names is not None:
        if SPECIAL_VALUES_COLUMN in names and item.column(SPECIAL_VALUES_COLUMN).null_count == item.num_rows:
            return item.drop_columns([SPECIAL_VALUES_COLUMN])
        return item
    if isinstance(item, dict) and item.get(SPECIAL_VALUES_COLUMN, "") is None:
        return {k: v for k, v in item.items() if k != SPECIAL_VALUES_COLUMN}
    return item


# -- planning ---------------------------------------------------------------------------------

_COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid, a.atttypmod
FROM pg_attribute a
WHERE a.attrelid = to_regclass(:table) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_TYPE_SQL = """
SELECT t.typname, t.typtype, t.typcategory, t.typbasetype, t.typtypmod, t.typelem,
       t.typnamespace = 'pg_catalog'::regnamespace
FROM pg_type t WHERE t.oid = :oid
"""


@dataclass(frozen=True)
class _PgType:
    name: str
    kind: str  # typtype: b base, c composite, d domain, e enum, p pseudo, r range, m multirange
    category: str
    base_oid: int
    base_typmod: int
    element_oid: int
    builtin: bool


def plan_table(engine: sa.Engine, table: str, *, pipeline: str, schema: str | None = None) -> TablePlan:
    """Read the table's column types from PostgreSQL's catalogue and plan each column.

    Args:
        engine: A SQLAlchemy engine on the source database.
        table: Table name.
        pipeline: Pipeline name, for error messages.
        schema: Schema, or None for the search path.

    Returns:
        The plan (call `check()` to refuse a table with unsupported columns).
    """
    qualified = f'"{schema}"."{table}"' if schema else f'"{table}"'
    with engine.connect() as conn:
        rows = conn.execute(sa.text(_COLUMNS_SQL), {"table": qualified}).all()
        cache: dict[int, _PgType] = {}

        def lookup(oid: int) -> _PgType:
            if oid not in cache:
                r = conn.execute(sa.text(_TYPE_SQL), {"oid": oid}).one()
                cache[oid] = _PgType(
                    str(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4]), int(r[5]), bool(r[6])
                )
            return cache[oid]

        money_scale = None
        plans = []
        for name, declared, type_oid, typmod in rows:
            resolved, resolved_typmod = _resolve_domain(lookup, int(type_oid), int(typmod))
            if resolved.name == "money" and resolved.builtin and money_scale is None:
                money_scale = int(conn.execute(sa.text("SELECT scale(0::money::numeric)")).scalar_one())
            plans.append(_plan_column(str(name), str(declared), resolved, resolved_typmod, money_scale))
    return TablePlan(pipeline=pipeline, table=table, columns=tuple(plans))


def _resolve_domain(lookup: Any, oid: int, typmod: int) -> tuple[_PgType, int]:
    """Follow domains down to their base type (a domain's own typmod wins over the column's)."""
    pg_type = lookup(oid)
    while pg_type.kind == "d":
        typmod = pg_type.base_typmod if pg_type.base_typmod != -1 else typmod
        pg_type = lookup(pg_type.base_oid)
    return pg_type, typmod


def _numeric_precision_scale(typmod: int) -> tuple[int, int] | None:
    if typmod < 4:
        return None
    packed = typmod - 4
    precision = (packed >> 16) & 0xFFFF
    scale = packed & 0x7FF
    if scale & 0x400:  # PostgreSQL 15+ allows a negative scale (11-bit two's complement)
        scale -= 0x800
    return precision, scale


def _plan_column(
    name: str, declared: str, pg_type: _PgType, typmod: int, money_scale: int | None
) -> ColumnPlan:
    base = pg_type.name

    def plan(handling: Handling, hints: TColumnSchema, **kwargs: Any) -> ColumnPlan:
        return ColumnPlan(name=name, declared=declared, base=base, handling=handling, hints=hints, **kwargs)

    as_text: TColumnSchema = {"data_type": "text"}
    as_json: TColumnSchema = {"data_type": "json"}
    if pg_type.kind == "p":
        return plan("refused", {}, reason="a pseudo-type has no values to load")
    if pg_type.kind == "c":  # composite (row) types: an object keyed by field name
        return plan("cast", as_json, cast="json")
    if pg_type.kind in ("e", "r", "m"):  # enums, ranges and multiranges: their text form
        return plan("cast", as_text, cast="text")
    if pg_type.category == "A" and pg_type.element_oid and base not in _TEXT_VECTORS:
        # Arrays of any element type as JSON; PostgreSQL writes NaN, infinity and the like as
        # JSON strings, never as made-up numbers or dates.
        return plan("cast", as_json, cast="json")
    if not pg_type.builtin:
        return plan(
            "refused",
            {},
            reason=f"type {base!r} is not built into PostgreSQL (an extension's), so its exact meaning is unknown here",
        )
    if base in _JSON_TYPES:
        return plan("cast", as_json, cast="json")
    if base == "numeric":
        return _plan_numeric(plan, typmod)
    if base == "money":
        # money is an integer count of the smallest currency unit; lc_monetary sets the decimals.
        scale = money_scale if money_scale is not None else 2
        return plan(
            "cast", {"data_type": "decimal", "precision": 19, "scale": scale}, cast=f"numeric(19,{scale})"
        )
    if base in _CAST_TO_INTEGER:
        return plan("cast", {"data_type": "bigint", "precision": 64}, cast=_CAST_TO_INTEGER[base])
    if base in _NATIVE:
        hints: TColumnSchema = dict(_NATIVE[base])  # type: ignore[assignment]
        if base in ("varchar", "bpchar") and typmod > 4:
            hints["precision"] = typmod - 4  # declared length in characters
        return plan("native", hints, special=_SPECIAL_TESTS.get(base))
    # Every other built-in type (uuid, interval, timetz, geometric, network, bit strings, xml,
    # tsvector, jsonpath, pg_lsn, oid-like and snapshot types, "char", name, ...): its text form,
    # which PostgreSQL's output function makes exact.
    return plan("cast", as_text, cast="text")


def _plan_numeric(plan: Any, typmod: int) -> ColumnPlan:
    as_text: TColumnSchema = {"data_type": "text"}
    bounds = _numeric_precision_scale(typmod)
    if bounds is None:
        # Unconstrained numeric holds up to 131072 integer and 16383 fractional digits, NaN and
        # +-Infinity: no decimal type holds them all, and one sized from today's data would change
        # type as the data does. PostgreSQL's own text form is exact, NaN and infinities included.
        return plan("cast", as_text, cast="text")  # type: ignore[no-any-return]
    precision, scale = bounds
    if not (0 <= scale <= precision <= MAX_DECIMAL_PRECISION):
        # Wider than any destination decimal, or a negative scale: exact only as text.
        return plan("cast", as_text, cast="text")  # type: ignore[no-any-return]
    hints: TColumnSchema = {"data_type": "decimal", "precision": precision, "scale": scale}
    if scale <= READER_DECIMAL_SCALE and precision - scale <= READER_DECIMAL_INTEGER_DIGITS:
        return plan("native", hints, special=_SPECIAL_TESTS["numeric"])  # type: ignore[no-any-return]
    # Fits the destination decimal but not the reader's: PostgreSQL sends the exact text, the
    # destination parses it into the declared DECIMAL(p,s).
    return plan("cast", hints, cast="text", special=_SPECIAL_TESTS["numeric"])  # type: ignore[no-any-return]


# -- native reader panics ---------------------------------------------------------------------


def is_native_panic(error: BaseException) -> bool:
    """Whether `error` is a panic from a Rust extension (pyo3's `PanicException`)."""
    kind = type(error)
    return kind.__name__ == "PanicException" or kind.__module__ == "pyo3_runtime"


def guarded_loader_class(backend: str, plan: TablePlan) -> type[BaseTableLoader]:
    """The backend's table loader, with native panics turned into `NativeReaderPanicError`.

    Pass as `sql_table(..., table_loader_class=...)`.

    Args:
        backend: The `sql_table` backend (connectorx, pyarrow, ...).
        plan: The table's plan (its pipeline and table name go into the error).

    Returns:
        A loader class for that backend.
    """
    base: Any = get_table_loader_class(backend)

    class GuardedTableLoader(base):  # type: ignore[misc]
        def load_rows(self, backend_kwargs: dict[str, Any] | None = None) -> Iterator[Any]:
            try:
                yield from super().load_rows(backend_kwargs)
            except BaseException as error:
                if not is_native_panic(error):
                    raise
                first = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
                raise NativeReaderPanicError(
                    f"Pipeline '{plan.pipeline}': the {backend} reader crashed reading table "
                    f"{plan.table}{_panic_column(first, self.table, plan)} ({first.strip()[:300]}). Nothing "
                    "of this run was loaded. A column "
                    "type or value it cannot convert is the usual cause: map that type in "
                    "utils/sql_types.py (cast it server-side), or use another backend."
                ) from error

    GuardedTableLoader.__name__ = f"Guarded{base.__name__}"
    return GuardedTableLoader


def _panic_column(message: str, table: sa.Table, plan: TablePlan) -> str:
    """`, column x (type)` when the panic names a result column by position or a type by name.

    connectorx reports a value it cannot convert as `FromSql(<position in the select list>)` and a
    type it cannot read as `not implemented: <type name>`.
    """
    position = re.search(r"FromSql\((\d+)\)", message)
    columns = list(table.c)
    if position is not None and int(position.group(1)) < len(columns):
        name = columns[int(position.group(1))].name
        found = [c for c in plan.columns if c.name == name]
    else:
        type_name = re.search(r"not implemented: (\S+)", message)
        found = [c for c in plan.columns if type_name is not None and c.base == type_name.group(1)]
    if not found:
        return ""
    return ", column " + ", ".join(f"{c.name} ({c.declared})" for c in found)


_DLT_KNOWN_TYPES: tuple[type[Any], ...] = (
    sa.Numeric,
    sa.Integer,
    sa.String,
    sa.LargeBinary,
    sa.DateTime,
    sa.Date,
    sa.Time,
    sa.JSON,
    sa.ARRAY,
    sa.Boolean,
    sa.Uuid,
)


def reflection_type_adapter(sql_type: Any) -> Any:
    """`type_adapter_callback` for `sql_table`: types dlt cannot map reflect as text.

    The plan's column hints decide the destination types anyway; this only spares dlt's warning
    for each type it does not know (interval, inet, ranges, ...).

    Args:
        sql_type: The type SQLAlchemy reflected.

    Returns:
        The same type, or `sa.Text` where dlt has no mapping for it.
    """
    if isinstance(sql_type, sa.Numeric) and not isinstance(sql_type, sa.Float):
        precision, scale = sql_type.precision, sql_type.scale or 0
        if precision is None or not 0 <= scale <= precision <= MAX_DECIMAL_PRECISION:
            # Planned as text: a reflected precision would otherwise stay on the text column.
            return sa.Text()
    return sql_type if isinstance(sql_type, _DLT_KNOWN_TYPES) else sa.Text()
