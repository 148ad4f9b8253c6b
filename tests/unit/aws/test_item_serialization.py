"""The fast attribute serializer writes exactly what boto3's TypeSerializer writes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import hypothesis.strategies as st
from boto3.dynamodb.types import TypeSerializer
from hypothesis import given

from streamscore.aws.dynamodb import serialize_value
from streamscore.core.items import to_item_value

json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(min_value=-1e125, max_value=1e125).map(to_item_value)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(min_size=1, max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_like)
def test_fast_path_matches_type_serializer(value: Any) -> None:
    assert serialize_value(value) == TypeSerializer().serialize(value)


def test_other_types_fall_back_to_type_serializer() -> None:
    assert serialize_value({"a", "b"}) == TypeSerializer().serialize({"a", "b"})
    assert serialize_value(b"\x00\x01") == {"B": b"\x00\x01"}
    assert serialize_value(Decimal("1E+16")) == {"N": "1E+16"}
