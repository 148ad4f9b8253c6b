"""The one-pass item conversion writes and reads exactly what the two passes did.

The reference is boto3's own TypeSerializer and TypeDeserializer around core.items'
Decimal rules (to_item_value before serialising, from_item_value after deserialising):
what the functions did before aws/dynamodb.py converted in one pass.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import hypothesis.strategies as st
import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from hypothesis import example, given

from streamscore.aws.dynamodb import deserialize, deserialize_value, serialize, serialize_value
from streamscore.core.items import MIN_MAGNITUDE, from_item_value, to_item_value

# every float DynamoDB can hold (and those it stores as 0), exponents and all
finite_floats = st.floats(min_value=-1e125, max_value=1e125, allow_nan=False)


def nested(numbers: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers(min_value=-(10**30), max_value=10**30)
        | numbers
        | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.tuples(children, children)
            | st.dictionaries(st.text(min_size=1, max_size=8), children, max_size=4)
        ),
        max_leaves=20,
    )


json_like = nested(finite_floats)
# exact Decimals, as callers may still pass them (counts, stored values written back)
decimal_like = nested(finite_floats.map(to_item_value))


def two_pass_serialize(value: Any) -> Any:
    return TypeSerializer().serialize(to_item_value(value))


def two_pass_deserialize(value: Any) -> Any:
    return from_item_value(TypeDeserializer().deserialize(value))


@given(json_like)
@example(1e16)
@example(1e-5)
@example(-0.0)
@example(1e-300)
@example(123456789012345680.0)
def test_one_pass_writes_what_two_passes_wrote(value: Any) -> None:
    assert serialize_value(value) == two_pass_serialize(value)


@given(decimal_like)
def test_decimals_are_written_as_boto3_writes_them(value: Any) -> None:
    assert serialize_value(value) == TypeSerializer().serialize(value)


@given(json_like)
def test_one_pass_reads_what_two_passes_read(value: Any) -> None:
    wire = TypeSerializer().serialize(to_item_value(value))
    assert deserialize_value(wire) == two_pass_deserialize(wire)


# numbers as DynamoDB may spell them back, beyond how we wrote them
@pytest.mark.parametrize(
    "text", ["100", "-0", "1.50", "1E+2", "1e5", "0E-10", "-2.5E-7", "12345678901234567890123"]
)
def test_numbers_in_any_spelling_read_as_before(text: str) -> None:
    got = deserialize_value({"N": text})
    expected = two_pass_deserialize({"N": text})
    assert got == expected and type(got) is type(expected)


def test_sets_and_binary_read_and_write_as_boto3_does() -> None:
    for wire in ({"SS": ["a", "b"]}, {"NS": ["1", "2.5"]}, {"B": b"\x00\x01"}):
        assert deserialize_value(wire) == two_pass_deserialize(wire)
    assert serialize_value({"a", "b"}) == TypeSerializer().serialize({"a", "b"})
    assert serialize_value(b"\x00\x01") == {"B": b"\x00\x01"}
    assert serialize_value(Decimal("1E+16")) == {"N": "1E+16"}


@given(finite_floats.filter(lambda x: abs(x) >= MIN_MAGNITUDE))
def test_floats_round_trip_exactly_through_the_wire(value: float) -> None:
    assert deserialize(serialize({"x": value})) == {"x": value}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e130])
def test_numbers_dynamodb_cannot_hold_are_refused_in_one_pass_too(value: float) -> None:
    with pytest.raises(ValueError, match="cannot store"):
        serialize({"features": {"amount": value}})


def test_none_attributes_are_left_out_and_nested_none_is_null() -> None:
    assert serialize({"a": None, "b": {"c": None}}) == {"b": {"M": {"c": {"NULL": True}}}}
