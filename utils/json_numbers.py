"""JSON numbers, exactly: parsed as `Decimal`, checked against the columns they load into.

Python's `json` - and so `requests`' `Response.json()` and dlt's `RESTClient` - turns every JSON number
with a fraction or an exponent into a float, so a value with more significant digits than a double
holds (15 to 17) is changed before dlt sees it. dlt then coerces a value into a `decimal` column and
the destination rounds it to the column's scale without a word: measured with the generated HTTP
template's `amount DECIMAL(12,2)` into DuckDB, `1.005` loaded as `1.01` and `"2.675"` as `2.68`, and a
value too wide for the column failed the load with a message that named no column.

Two parts close that:

* `ExactJsonClient` is dlt's `RESTClient` parsing a page's numbers with a fraction or exponent as
  `Decimal` (integers are exact in Python already).
* `exact_numbers(...)` makes a map step that, before anything is written, checks every row:
  a declared decimal column's value must fit DECIMAL(p, s) digit for digit, and every other `Decimal`
  becomes the float `json` would have made - only if that double prints back as the same number
  (`0.1`, `12.5`, `1e-07`) or is exactly it (`2**60`); a value it would change is refused, and so
  is an undeclared integer outside BIGINT (dlt's normalize step would fail on it naming no column). Either refusal is a permanent
  `MalformedPayloadError` naming pipeline, table, column and record, raised before anything loads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from dlt.common import jsonpath
from dlt.sources.helpers.rest_client.client import RESTClient
from requests import Response

from utils.errors import ConfigurationError, MalformedPayloadError

# Snowflake's NUMBER: at most 38 digits, scale at most 37 (DuckDB's DECIMAL allows the same or more).
MAX_PRECISION = 38
MAX_SCALE = 37
_BIGINT_MIN, _BIGINT_MAX = -(2**63), 2**63 - 1


class ExactJsonClient(RESTClient):
    """dlt's `RESTClient`, parsing JSON numbers with a fraction or exponent as `Decimal`.

    Only the page data is parsed this way (what `paginate` yields); paginators read their own
    cursors from the response as before.
    """

    def extract_response(self, response: Response, data_selector: jsonpath.TJsonPath) -> list[Any]:
        """Select the page data from `response`, numbers exact (dlt's own selection rules).

        Args:
            response: The HTTP response of one page.
            data_selector: JSONPath of the records in the body.

        Returns:
            The records of the page (a single selected object wrapped in a list; nothing: []).
        """
        data: Any = jsonpath.find_values(data_selector, response.json(parse_float=Decimal))
        data = data[0] if isinstance(data, list) and len(data) == 1 else data
        if data is None:
            return []
        return data if isinstance(data, list) else [data]


def fit_decimal(value: Any, precision: int, scale: int) -> Decimal:
    """`value` as a `Decimal` that DECIMAL(precision, scale) holds digit for digit.

    Only digits are looked at (no `Decimal` arithmetic, whose context rounds to 28 digits).

    Args:
        value: A `Decimal`, `int`, numeric string or float (taken as it prints).
        precision: Total digits of the column.
        scale: Digits after the point.

    Returns:
        The value, without an exponent (so `1E+3` loads as 1000).

    Raises:
        ValueError: Not a finite number, or more than `precision - scale` integer or `scale`
            fractional digits (storing it would round it).
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str | float):
        raise ValueError(repr(value))
    try:
        number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except InvalidOperation:
        raise ValueError(repr(value)) from None
    if not number.is_finite():
        raise ValueError(repr(value))
    sign, raw_digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite
    digits = list(raw_digits)
    while len(digits) > 1 and digits[-1] == 0:
        digits.pop()
        exponent += 1
    while len(digits) > 1 and digits[0] == 0:
        digits.pop(0)
    if digits == [0]:
        return Decimal(0)
    if -exponent > scale or len(digits) + exponent > precision - scale:
        raise ValueError(repr(value))
    if exponent > 0:
        digits, exponent = digits + [0] * exponent, 0
    return Decimal((sign, tuple(digits), exponent))


def as_exact_float(value: Decimal) -> float | None:
    """The float `json` would have made of `value`, if that keeps it; else None.

    Kept means the double prints back as the same number (`0.1`, the shortest form that reads back
    as that double) or is exactly the number (`2**60`, whose shortest form has fewer digits).
    """
    number = float(value)
    if math.isfinite(number) and (Decimal(repr(number)) == value or Decimal(number) == value):
        return number
    return None


def exact_numbers(
    pipeline: str,
    table: str,
    decimals: Mapping[str, tuple[int, int]],
    *,
    key: str = "id",
    remedy: str = "declare it a decimal column of the source",
) -> Callable[[Any], Any]:
    """A map step (`resource.add_map`) that lets a row through only if every number in it is exact.

    Args:
        pipeline: The pipeline's name, for error messages.
        table: The table the rows load into, for error messages.
        decimals: Declared decimal columns (top-level keys): name -> (precision, scale).
        key: The row's identifying field, named in error messages.
        remedy: Where decimal columns are declared, for the error message.

    Returns:
        A function of one row (a dict) returning it with declared decimals as exact `Decimal`s and
        other `Decimal`s (nested ones too) as floats.

    Raises:
        ConfigurationError: A declared precision or scale Snowflake's NUMBER cannot have (at once).
    """
    for name, (precision, scale) in decimals.items():
        if not (1 <= precision <= MAX_PRECISION and 0 <= scale <= min(precision, MAX_SCALE)):
            raise ConfigurationError(
                f"{pipeline}: {table}.{name} is declared DECIMAL({precision},{scale}); precision must be "
                f"1 to {MAX_PRECISION} and scale 0 to the precision (at most {MAX_SCALE})."
            )

    def refuse(row: Mapping[str, Any], column: str, value: Any, why: str) -> MalformedPayloadError:
        shown = str(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return MalformedPayloadError(
            f"{pipeline}: {table}.{column} of the record with {key} {row.get(key)!r} is {shown}, {why}; "
            "nothing was loaded. If the value is right, "
            + (
                f"widen {column}'s precision or scale ({remedy}) and run a full refresh; "
                if column in decimals
                else f"{remedy} so it loads exactly; "
            )
            + "otherwise fix it upstream."
        )

    def floats(row: Mapping[str, Any], path: str, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and not _BIGINT_MIN <= value <= _BIGINT_MAX:
            # dlt would fail its normalize step on it, naming no column.
            raise refuse(row, path, value, "outside the BIGINT range an undeclared integer loads into")
        if isinstance(value, Decimal):
            number = as_exact_float(value)
            if number is None:
                raise refuse(row, path, value, "which a double (DOUBLE / FLOAT) would change")
            return number
        if isinstance(value, dict):
            return {k: floats(row, f"{path}__{k}", v) for k, v in value.items()}
        if isinstance(value, list):
            return [floats(row, path, v) for v in value]
        return value

    def check(row: Any) -> Any:
        if not isinstance(row, dict):
            return row
        out = {}
        for name, value in row.items():
            if name in decimals and value is not None:
                precision, scale = decimals[name]
                try:
                    out[name] = fit_decimal(value, precision, scale)
                except ValueError:
                    raise refuse(
                        row, name, value, f"which DECIMAL({precision},{scale}) cannot hold without rounding"
                    ) from None
            else:
                out[name] = floats(row, name, value)
        return out

    return check
