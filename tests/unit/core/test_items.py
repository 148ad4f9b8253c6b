"""DynamoDB value conversion: exact float round trips, and numbers DynamoDB cannot hold."""

from __future__ import annotations

import math
from decimal import Decimal

import hypothesis.strategies as st
import pytest
from hypothesis import given

from streamscore.core.items import MIN_MAGNITUDE, from_item_value, to_item_value


@given(st.floats(min_value=-1e125, max_value=1e125).filter(lambda x: abs(x) >= MIN_MAGNITUDE))
def test_floats_round_trip_exactly(value: float) -> None:
    assert from_item_value(to_item_value(value)) == value


def test_magnitudes_below_dynamodbs_range_are_stored_as_zero() -> None:
    assert to_item_value(1e-310) == Decimal(0)
    assert to_item_value(-1e-200) == Decimal(0)
    assert to_item_value(1e-129) == Decimal(repr(1e-129))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(value: float) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        to_item_value({"x": [value]})


def test_nested_values_convert_both_ways() -> None:
    # given
    item = {"a": 1.5, "b": [2, 0.25], "c": {"d": True, "e": None, "f": "s"}}

    # when
    stored = to_item_value(item)

    # then
    assert stored == {
        "a": Decimal("1.5"),
        "b": [2, Decimal("0.25")],
        "c": {"d": True, "e": None, "f": "s"},
    }
    assert from_item_value(stored) == item


def test_magnitudes_past_dynamodbs_range_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot store the number"):
        to_item_value(1e130)
