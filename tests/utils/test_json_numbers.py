"""utils/json_numbers.py: decimals fit their column digit for digit; other numbers print back the same."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from utils.errors import ConfigurationError, MalformedPayloadError
from utils.json_numbers import as_exact_float, exact_numbers, fit_decimal


@pytest.mark.parametrize(
    ("value", "precision", "scale", "expected"),
    [
        (Decimal("1.50"), 12, 2, Decimal("1.5")),  # trailing zeros are no digits of the value
        ("0.10", 12, 2, Decimal("0.1")),
        (7, 3, 0, Decimal(7)),
        (Decimal("1E+3"), 4, 0, Decimal(1000)),  # an exponent: loads without one
        (Decimal("-0.00"), 12, 2, Decimal(0)),
        ("9" * 38, 38, 0, Decimal("9" * 38)),  # beyond Decimal's 28-digit context: never rounded
        ("0." + "1" * 37, 38, 37, Decimal("0." + "1" * 37)),
        (0.07, 12, 2, Decimal("0.07")),  # a float as it prints
    ],
)
def test_values_the_column_holds_are_kept_exactly(
    value: Any, precision: int, scale: int, expected: Decimal
) -> None:
    result = fit_decimal(value, precision, scale)
    assert result == expected
    assert str(result) == str(expected)


@pytest.mark.parametrize(
    ("value", "precision", "scale"),
    [
        (Decimal("1.005"), 12, 2),
        ("10000000000", 12, 2),  # 11 integer digits, the column has 10
        ("9" * 39, 38, 0),
        (Decimal("1E+4"), 4, 0),
        ("NaN", 12, 2),
        ("Infinity", 38, 0),
        ("12k", 12, 2),
        (True, 12, 2),  # JSON true is no number
        (None, 12, 2),
    ],
)
def test_values_the_column_cannot_hold_are_refused(value: Any, precision: int, scale: int) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(value))):
        fit_decimal(value, precision, scale)


def test_a_double_is_used_only_where_it_prints_the_value_back() -> None:
    assert as_exact_float(Decimal("0.1")) == 0.1
    assert as_exact_float(Decimal("1e-7")) == 1e-7
    assert as_exact_float(Decimal("0.1000000000000000055511151231257827")) is None
    assert as_exact_float(Decimal("12345678901234567.5")) is None
    assert as_exact_float(Decimal("1e400")) is None  # infinity as a double
    assert as_exact_float(Decimal(2**60)) == 2.0**60  # exact, though it prints as 1.152921504606847e+18
    assert as_exact_float(Decimal(2**60 + 1)) is None


def test_the_map_step_types_rows_and_names_the_column_it_refuses() -> None:
    check = exact_numbers("shop", "orders", {"total": (10, 2)}, remedy="DECIMAL_COLUMNS in settings.py")
    row = {"id": 3, "total": Decimal("5.50"), "tax": Decimal("0.2"), "lines": [{"w": Decimal("1.5")}], "n": 4}
    assert check(row) == {"id": 3, "total": Decimal("5.5"), "tax": 0.2, "lines": [{"w": 1.5}], "n": 4}
    assert check({"id": 4, "total": None}) == {"id": 4, "total": None}
    with pytest.raises(
        MalformedPayloadError, match=r"^shop: orders\.total of the record with id 5 is 1\.005, "
    ):
        check({"id": 5, "total": Decimal("1.005")})
    with pytest.raises(MalformedPayloadError, match=r"orders\.meta__x of the record with id 6 .* double"):
        check({"id": 6, "total": 1, "meta": {"x": Decimal("0.10000000000000000001")}})
    assert check({"id": 7, "n": 2**63 - 1, "m": -(2**63)}) == {"id": 7, "n": 2**63 - 1, "m": -(2**63)}
    with pytest.raises(
        MalformedPayloadError, match=r"orders\.n of the record with id 8 is 9223372036854775808, .*BIGINT"
    ):
        check({"id": 8, "n": 2**63})
    assert check({"id": 9, "total": 10**7})["total"] == Decimal(10**7)  # declared: a decimal, not BIGINT


def test_a_declared_type_snowflake_cannot_have_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"orders\.total is declared DECIMAL\(40,2\)"):
        exact_numbers("shop", "orders", {"total": (40, 2)})
    with pytest.raises(ConfigurationError):
        exact_numbers("shop", "orders", {"total": (5, 6)})
