"""The wire-format path against botocore's own, on every call the three functions make.

The functions run the whole path on moto (bench/calls.py: ~1,000 records through preprocess,
score and the drift check, with invalid records, alerts and a drift report). Every request
they made is serialized again by botocore's JSONSerializer and by WireFormatSerializer, and
every response parsed again by botocore's JSON parser and by WireFormatParser: bodies must be
byte for byte the same and parsed responses equal. botocore is pinned; an upgrade that changes
its serializer or parser for these calls fails here.
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import boto3
import pytest
from botocore.parsers import create_parser

from bench.calls import whole_path
from bench.common import AWS_ENV, COMMON_FUNCTION_ENV, LAMBDA_LIKE_BOTOCORE, environment
from embedded.template import load_template
from streamscore.aws.retry import client_config
from streamscore.aws.wire import (
    WIRE_OPERATIONS,
    WireFormatParser,
    WireFormatSerializer,
    direct_context_params,
)
from support.aws_stack import TEMPLATE_PATH
from support.model_dirs import renamed_model


class Recorder:
    """Every request's parameters and every response the observed clients saw."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.responses: list[tuple[str, str, dict[str, Any]]] = []

    def attach(self, client: Any) -> None:
        service = client.meta.service_model.service_name
        if service not in WIRE_OPERATIONS:
            return

        def request(model: Any, params: dict[str, Any], **_: Any) -> None:
            # after botocore's own handlers (idempotency tokens), before the serializer
            self.requests.append((service, model.name, copy.deepcopy(params)))

        def response(model: Any, http_response: Any, **_: Any) -> None:
            raw = {
                "body": http_response.content,
                "headers": dict(http_response.headers),
                "status_code": http_response.status_code,
            }
            self.responses.append((service, model.name, raw))

        client.meta.events.register("before-parameter-build.*.*", request)
        client.meta.events.register("after-call.*.*", response)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    recorder = Recorder()
    # a challenger scored in shadow: its fields, its count items and the prediction condition
    # that goes with them are call shapes of their own
    challenger = renamed_model(tmp_path_factory.mktemp("registry"), "cardfraud-gbdt-shadow")
    # the benchmark's process settings (fake credentials, Powertools), for this run only
    with environment(AWS_ENV | COMMON_FUNCTION_ENV | LAMBDA_LIKE_BOTOCORE):
        whole_path(load_template(TEMPLATE_PATH), observe=recorder.attach, challenger=challenger)
    return recorder


def _client(service: str) -> Any:
    """A client as the functions make them (parameter validation off), on botocore's path."""
    return boto3.client(service, region_name="us-east-1", config=client_config())


def _model(service: str) -> Any:
    return _client(service).meta.service_model


def test_every_request_body_is_botocores_byte_for_byte(recorded: Recorder) -> None:
    seen: Counter[tuple[str, str]] = Counter()
    for service, operation, params in recorded.requests:
        model = _model(service).operation_model(operation)
        botocore_serializer = _client(service)._serializer
        ours = WireFormatSerializer(botocore_serializer, WIRE_OPERATIONS[service])
        ours.serialize_to_request(copy.deepcopy(params), model)  # the first call is botocore's

        expected = botocore_serializer.serialize_to_request(copy.deepcopy(params), model)
        actual = ours.serialize_to_request(copy.deepcopy(params), model)

        assert actual == expected, f"{service}.{operation}"
        seen[service, operation] += 1
    # every operation on the list was made and compared; nothing made is left off it
    made = {(s, o) for s, o in seen}
    assert made == {(s, o) for s, ops in WIRE_OPERATIONS.items() for o in ops}, seen


def test_every_response_parses_as_botocore_parses_it(recorded: Recorder) -> None:
    compared = 0
    for service, operation, response in recorded.responses:
        shape = _model(service).operation_model(operation).output_shape
        shapes = frozenset({shape.name}) if shape is not None else frozenset()

        expected = create_parser("json").parse(copy.deepcopy(response), shape)
        actual = WireFormatParser(create_parser("json"), shapes).parse(
            copy.deepcopy(response), shape
        )

        assert actual == expected, f"{service}.{operation}"
        compared += response["status_code"] < 301
    assert compared > 100  # the whole path's successful calls, not only errors


def test_a_binary_attribute_value_is_left_to_botocores_parser() -> None:
    # given a GetItem response holding a binary value, which botocore decodes from base64
    shape = _model("dynamodb").operation_model("GetItem").output_shape
    response = {
        "body": b'{"Item": {"k": {"S": "a"}, "blob": {"B": "aGVsbG8="}}}',
        "headers": {"x-amzn-requestid": "r1"},
        "status_code": 200,
    }

    parsed = WireFormatParser(create_parser("json"), frozenset({shape.name})).parse(response, shape)

    assert parsed["Item"]["blob"] == {"B": b"hello"}


def test_every_request_finds_the_endpoint_botocore_finds(recorded: Recorder) -> None:
    # the table names DynamoDB's endpoint rules take, read without JMESPath (aws/wire.py)
    compared = Counter[str]()
    for service, operation, params in recorded.requests:
        plain, direct = _client(service), direct_context_params(_client(service))
        model = plain.meta.service_model.operation_model(operation)

        def endpoint(client: Any, model: Any = model, params: Any = params) -> Any:
            return client._ruleset_resolver.construct_endpoint(model, copy.deepcopy(params), {})

        assert endpoint(direct) == endpoint(plain), f"{service}.{operation}"
        compared[operation] += 1
    assert compared["TransactWriteItems"] and compared["BatchWriteItem"], compared
