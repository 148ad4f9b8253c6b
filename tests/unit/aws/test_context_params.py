"""The endpoint rules' operation context parameters read without JMESPath are what JMESPath reads.

botocore resolves DynamoDB's ResourceArnList (the tables a batch or transaction names) with
jmespath.search on every call; streamscore.aws.wire reads the same paths with plain loops. Any
arguments, including malformed ones, give the same value, or the reader leaves them to JMESPath.
"""

from __future__ import annotations

from typing import Any

import boto3
import jmespath
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamscore.aws.retry import client_config
from streamscore.aws.wire import (
    CONTEXT_PARAM_READERS,
    WIRE_OPERATIONS,
    UnreadArgumentsError,
    direct_context_params,
)

_scalars = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["t1", "t2", ""])
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b"]), inner),
    max_leaves=8,
)
_members = st.sampled_from(["Get", "Put", "Update", "Delete", "ConditionCheck", "Other"])
# an action as our calls make them, or anything else JSON can hold
_action = (
    st.dictionaries(
        _members,
        st.fixed_dictionaries({}, optional={"TableName": _json, "Key": _json}) | _json,
        max_size=3,
    )
    | _json
)
_arguments = st.fixed_dictionaries(
    {},
    optional={
        "TransactItems": st.lists(_action, max_size=6) | _json,
        "RequestItems": st.dictionaries(st.sampled_from(["t1", "t2", "t3"]), _json) | _json,
    },
)


def _search(path: str, arguments: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "value", jmespath.search(path, arguments)
    except jmespath.exceptions.JMESPathError as error:
        return "error", type(error)


@pytest.mark.parametrize("path", sorted(CONTEXT_PARAM_READERS))
@given(arguments=_arguments)
def test_each_reader_gives_what_jmespath_gives(path: str, arguments: dict[str, Any]) -> None:
    read = CONTEXT_PARAM_READERS[path]
    expected = _search(path, arguments)
    try:
        actual: tuple[str, Any] = "value", read(arguments)
    except UnreadArgumentsError:  # left to JMESPath: the client then searches as botocore does
        return
    assert actual == expected


def test_every_context_parameter_of_our_operations_has_a_reader() -> None:
    # a botocore upgrade that changes a path leaves it to JMESPath: correct, but slow again
    model = boto3.client("dynamodb", region_name="us-east-1").meta.service_model
    paths = {
        param["path"]
        for name in WIRE_OPERATIONS["dynamodb"]
        for param in (model.operation_model(name).operation_context_parameters or {}).values()
    }
    assert paths, "DynamoDB's operations no longer declare context parameters"
    assert paths <= set(CONTEXT_PARAM_READERS)


def test_a_transaction_resolves_to_the_endpoint_botocore_resolves() -> None:
    # given a client as botocore makes it and one reading context parameters directly
    plain = boto3.client("dynamodb", region_name="eu-west-1", config=client_config())
    direct = direct_context_params(
        boto3.client("dynamodb", region_name="eu-west-1", config=client_config())
    )
    operation = plain.meta.service_model.operation_model("TransactWriteItems")
    arguments = {
        "TransactItems": [{"Put": {"TableName": "preds", "Item": {}}}] * 3
        + [{"Update": {"TableName": "arn:aws:dynamodb:eu-west-1:123456789012:table/m"}}]
    }

    # then both find the same endpoint (an ARN's account id included)
    def endpoint(client: Any) -> Any:
        return client._ruleset_resolver.construct_endpoint(operation, dict(arguments), {})

    assert endpoint(direct) == endpoint(plain)
