"""Requests already in wire format skip botocore's shape walk, and their responses its parser.

Our DynamoDB and EventBridge calls build their parameters in the services' JSON wire format
(attribute values as {"S": ...}/{"N": "..."}, event details as JSON text): botocore's
JSONSerializer then walks the operation's input shape only to copy them, and its JSON
parser walks the output shape only to copy the response back. For the operations named
here, the request body is `json.dumps(parameters)` (what the walk produces for parameters
with no blob, timestamp, float or renamed member) and a successful response is
`json.loads(body)` plus the ResponseMetadata botocore adds; an error response, a response
holding a binary attribute value, or parameters json cannot write go to botocore's own
serializer and parser.

`cache_user_agent` keeps the User-Agent header botocore builds twice a request.
`direct_context_params` reads the table names DynamoDB's endpoint rules take from a batch or
transaction (ResourceArnList) with a plain loop instead of botocore's JMESPath search, which
walked a 100-action TransactWriteItems in ~0.8 ms. This reaches into botocore's private
attributes (a client's `_serializer`, `_user_agent_creator` and `_ruleset_resolver`, its
endpoint's `_response_parser_factory`). botocore is pinned (functions/requirements.txt), and
tests/unit/aws/test_wire_format.py compares every call shape the functions make, request
bytes and parsed responses, with botocore's own: an upgrade that changes either fails it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from botocore.context import get_context

# The calls the functions make on every batch or check, per service, all in wire format; the
# cooldown item's rare conditional UpdateItem (on drift only) keeps botocore's path.
WIRE_OPERATIONS: Mapping[str, frozenset[str]] = {
    "dynamodb": frozenset(
        {"BatchGetItem", "BatchWriteItem", "GetItem", "PutItem", "Query", "TransactWriteItems"}
    ),
    "events": frozenset({"PutEvents"}),
}
# A response body holding one of these may carry base64 blobs botocore would decode.
_BINARY_MARKERS = (b'"B":', b'"BS":')


class WireFormatSerializer:
    """botocore's serializer, except for `operations`: their body is the parameters as JSON."""

    def __init__(self, inner: Any, operations: Iterable[str]):
        self.inner = inner
        self.operations = frozenset(operations)
        self._requests: dict[str, dict[str, Any]] = {}  # each listed operation's, but the body

    def serialize_to_request(self, parameters: Any, operation_model: Any) -> dict[str, Any]:
        name = operation_model.name
        request = self._requests.get(name)
        if request is None:  # the operation's first call: botocore's, its request kept
            return self._first(parameters, operation_model)
        try:
            body = json.dumps(parameters).encode("utf-8")
        except (TypeError, ValueError):  # not wire format after all: botocore's way
            return self.inner.serialize_to_request(parameters, operation_model)
        return {**request, "headers": dict(request["headers"]), "body": body}

    def _first(self, parameters: Any, operation_model: Any) -> dict[str, Any]:
        """botocore's request; for a listed operation without a host prefix, what every later
        call shares (method, path, target headers) is kept."""
        request = self.inner.serialize_to_request(parameters, operation_model)
        if operation_model.name in self.operations and "host_prefix" not in request:
            kept = {k: v for k, v in request.items() if k != "body"}
            kept["headers"] = dict(request["headers"])
            self._requests[operation_model.name] = kept
        return request


class WireFormatParser:
    """botocore's parser, except for successful responses of `shapes` with no binary value."""

    def __init__(self, inner: Any, shapes: frozenset[str]):
        self.inner = inner
        self.shapes = shapes

    def parse(self, response: Mapping[str, Any], shape: Any) -> Any:
        body = response["body"]
        if (
            shape is None
            or shape.name not in self.shapes
            or response["status_code"] >= 301
            or any(marker in body for marker in _BINARY_MARKERS)
        ):
            return self.inner.parse(response, shape)
        parsed = json.loads(body) if body else {}
        metadata: dict[str, Any] = {}
        headers = response["headers"]
        if "x-amzn-requestid" in headers:
            metadata["RequestId"] = headers["x-amzn-requestid"]
        metadata["HTTPStatusCode"] = response["status_code"]
        metadata["HTTPHeaders"] = {k.lower(): v for k, v in headers.items()}
        algorithm = response.get("context", {}).get("checksum", {}).get("response_algorithm")
        if algorithm:
            metadata["ChecksumAlgorithm"] = algorithm
        parsed["ResponseMetadata"] = metadata
        return parsed


class WireFormatParserFactory:
    def __init__(self, inner: Any, shapes: frozenset[str]):
        self.inner = inner
        self.shapes = shapes

    def create_parser(self, protocol_name: str) -> Any:
        parser = self.inner.create_parser(protocol_name)
        return WireFormatParser(parser, self.shapes) if protocol_name == "json" else parser


def use_wire_format(client: Any, operations: Iterable[str] | None = None) -> Any:
    """`client` with the wire-format path for `operations` (default: WIRE_OPERATIONS of its
    service); returns it. Only for the JSON protocol; other clients are left as they are."""
    model = client.meta.service_model
    if model.protocol != "json":
        return client
    chosen = frozenset(
        operations if operations is not None else WIRE_OPERATIONS.get(model.service_name, ())
    )
    if not chosen:
        return client
    shapes = frozenset(
        shape.name
        for shape in (model.operation_model(name).output_shape for name in chosen)
        if shape is not None
    )
    client._serializer = WireFormatSerializer(client._serializer, chosen)
    endpoint = client._endpoint
    endpoint._response_parser_factory = WireFormatParserFactory(
        endpoint._response_parser_factory,
        shapes,
    )
    return client


class UnreadArgumentsError(Exception):
    """Arguments a reader leaves to JMESPath."""


def _keys(name: str) -> Callable[[Mapping[str, Any]], Any]:
    def read(args: Mapping[str, Any]) -> Any:
        value = args.get(name)
        if not isinstance(value, dict):
            raise UnreadArgumentsError  # keys() of anything else is JMESPath's error to raise
        return list(value)

    return read


def _table_names(*members: str) -> Callable[[Mapping[str, Any]], Any]:
    """TransactItems[*].<member>.TableName, or for several members the flattened projection
    ([m1.TableName, m2.TableName, ...][]): JMESPath keeps every value but null, lists as they
    are, and skips what is not an object."""

    def read(args: Mapping[str, Any]) -> Any:
        actions = args.get("TransactItems")
        if not isinstance(actions, list):
            return None
        names: list[Any] = []
        for action in actions:
            if not isinstance(action, dict):
                continue
            for member in members:
                body = action.get(member)
                name = body.get("TableName") if isinstance(body, dict) else None
                if name is not None:
                    names.append(name)
        return names

    return read


# Operation context parameters (the services' endpoint rules) read without JMESPath, by their
# path in botocore's service model: each gives what jmespath.search(path, args) gives for the
# parameters botocore takes (tests/unit/aws/test_wire_format.py checks them against it).
CONTEXT_PARAM_READERS: Mapping[str, Callable[[Mapping[str, Any]], Any]] = {
    "keys(RequestItems)": _keys("RequestItems"),
    "TransactItems[*].Get.TableName": _table_names("Get"),
    "TransactItems[*].[ConditionCheck.TableName, Put.TableName, Delete.TableName, "
    "Update.TableName][]": _table_names("ConditionCheck", "Put", "Delete", "Update"),
}


def direct_context_params(client: Any) -> Any:
    """`client` reading the operation context parameters of CONTEXT_PARAM_READERS' paths without
    JMESPath (any other path still goes to botocore's search); returns it."""
    resolver = getattr(client, "_ruleset_resolver", None)
    if resolver is None:
        return client
    search = resolver._resolve_param_as_operation_context_param

    def resolve(param_name: str, operation_model: Any, call_args: Mapping[str, Any]) -> Any:
        declared = operation_model.operation_context_parameters
        if param_name not in declared:
            return None
        read = CONTEXT_PARAM_READERS.get(declared[param_name]["path"])
        if read is not None:
            try:
                return read(call_args)
            except UnreadArgumentsError:
                pass
        return search(param_name, operation_model, call_args)

    resolver._resolve_param_as_operation_context_param = resolve  # the instance's, not the class's
    return client


def cache_user_agent(client: Any) -> Any:
    """`client` building its User-Agent once per set of request features; returns it.

    botocore builds the header twice a request (when the request dict is made, and again
    when the request is created), from the client's fixed components and the features the
    request registered in its context. The string is kept per feature set, so it is the
    same as botocore's for every request (tests/unit/aws/test_wire_format.py).
    """
    creator = client._user_agent_creator
    build = creator.to_string
    built: dict[frozenset[str], str] = {}

    def to_string() -> str:
        context = get_context()
        key = frozenset(context.features) if context is not None else frozenset()
        value = built.get(key)
        if value is None:
            value = built[key] = build()
        return value

    creator.to_string = to_string  # the instance's, found before the class's method
    return client
