"""moto fixtures shared by the integration tests: the stack's tables and streams, built from template.yaml.

`local_stack` creates every DynamoDB table and Kinesis stream of the template with the
template's own key schemas, indexes and stream modes, inside `mock_aws`. `load_handler`
imports a function's handler module afresh with the environment the template gives that
function, so each test gets module-scope clients bound to the mock.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer
from moto import mock_aws

from embedded.template import (
    Template,
    load_template,
    parameter_values,
    stream_definitions,
    table_definitions,
)
from streamscore.core.items import from_item_value

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
REGION = "us-east-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}
# Powertools outside Lambda: no X-Ray daemon to talk to, metrics under a known namespace.
POWERTOOLS_TEST_ENV = {
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "StreamScoreTest",
}

_deserializer = TypeDeserializer()


def plain_item(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB wire item as plain Python (ints and floats, not Decimals)."""
    return from_item_value({name: _deserializer.deserialize(value) for name, value in raw.items()})


@dataclass(frozen=True)
class StreamedRecord:
    shard_id: str
    sequence_number: str
    partition_key: str
    data: bytes

    def json(self) -> Any:
        return json.loads(self.data)


class CallCounter:
    """Counts the AWS calls clients make, per "service.Operation", via botocore's before-call events.

    `params` keeps each call's API parameters (from before-parameter-build, the same call)
    for size checks.
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.params: list[tuple[str, dict[str, Any]]] = []

    def attach(self, *clients: Any) -> CallCounter:
        for client in clients:
            client.meta.events.register("before-parameter-build.*.*", self._keep)
            client.meta.events.register("before-call.*.*", self._count)
        return self

    def detach(self, *clients: Any) -> None:
        for client in clients:
            client.meta.events.unregister("before-parameter-build.*.*", self._keep)
            client.meta.events.unregister("before-call.*.*", self._count)

    @staticmethod
    def _name(model: Any) -> str:
        return f"{model.service_model.service_name}.{model.name}"

    def _keep(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.params.append((self._name(model), params))

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[self._name(model)] += 1

    def requests(self, operation: str) -> list[dict[str, Any]]:
        """API parameters of every `operation` call ("dynamodb.BatchWriteItem")."""
        return [params for name, params in self.params if name == operation]


@dataclass
class LocalStack:
    """The template's tables and streams inside moto, by logical id, and ways to look into them."""

    template: Template
    dynamodb: Any
    kinesis: Any
    tables: dict[str, str] = field(default_factory=dict)  # logical id -> table name
    streams: dict[str, str] = field(default_factory=dict)  # logical id -> stream name

    def resource_name(self, logical_id: str) -> str:
        if logical_id in self.tables:
            return self.tables[logical_id]
        if logical_id in self.streams:
            return self.streams[logical_id]
        raise KeyError(f"{logical_id} is not a table or stream of the local stack")

    def function_environment(
        self, function_id: str, overrides: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The environment template.yaml gives `function_id` (Globals + its own), resolved locally.

        `Ref`s to parameters take their defaults, `Ref`s to tables and streams their local
        names; anything else (GetAtt of a bus, a bucket...) must come in `overrides`.
        """
        overrides = dict(overrides or {})
        parameters = parameter_values(self.template)
        variables = dict(
            self.template.get("Globals", {})
            .get("Function", {})
            .get("Environment", {})
            .get("Variables", {})
        )
        function = self.template["Resources"][function_id]["Properties"]
        variables |= function.get("Environment", {}).get("Variables", {})
        environment: dict[str, str] = {}
        for name, value in variables.items():
            if name in overrides:
                continue
            if isinstance(value, (str, int, float)):
                environment[name] = str(value)
            elif isinstance(value, dict) and set(value) == {"Ref"}:
                ref = value["Ref"]
                environment[name] = (
                    parameters[ref] if ref in parameters else self.resource_name(ref)
                )
            else:
                raise KeyError(f"{function_id}: give {name} (={value!r}) in overrides")
        return environment | overrides

    def scan(self, logical_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.tables[logical_id]}
        while True:
            page = self.dynamodb.scan(**kwargs)
            items += [plain_item(i) for i in page["Items"]]
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def items_by(self, logical_id: str, key: str) -> dict[Any, dict[str, Any]]:
        return {item[key]: item for item in self.scan(logical_id)}

    def read_stream(self, logical_id: str) -> list[StreamedRecord]:
        """Every record on the stream, shard by shard, in each shard's order."""
        name = self.streams[logical_id]
        records: list[StreamedRecord] = []
        for shard in self.kinesis.list_shards(StreamName=name)["Shards"]:
            iterator = self.kinesis.get_shard_iterator(
                StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while iterator:
                page = self.kinesis.get_records(ShardIterator=iterator, Limit=10_000)
                records += [
                    StreamedRecord(
                        shard["ShardId"], r["SequenceNumber"], r["PartitionKey"], r["Data"]
                    )
                    for r in page["Records"]
                ]
                if not page["Records"]:
                    break
                iterator = page.get("NextShardIterator")
        return records


@pytest.fixture(scope="session")
def template() -> Template:
    return load_template(TEMPLATE_PATH)


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def local_stack(aws_credentials: None, template: Template) -> Iterator[LocalStack]:
    """Every table and stream of template.yaml, created in moto from the template's definitions."""
    with mock_aws():
        stack = LocalStack(
            template=template,
            dynamodb=boto3.client("dynamodb", region_name=REGION),
            kinesis=boto3.client("kinesis", region_name=REGION),
        )
        for logical_id, kwargs in table_definitions(template).items():
            name = f"streamscore-{logical_id}-local"
            stack.dynamodb.create_table(TableName=name, **kwargs)
            stack.tables[logical_id] = name
        for logical_id, kwargs in stream_definitions(template).items():
            name = f"streamscore-{logical_id}-local"
            stack.kinesis.create_stream(StreamName=name, **kwargs)
            stack.streams[logical_id] = name
        yield stack


@pytest.fixture
def load_handler(monkeypatch: pytest.MonkeyPatch, local_stack: LocalStack) -> Any:
    """`load(module, environment)`: import a handler module afresh inside the mock.

    The module and the observability singletons are imported again, so settings,
    clients and the Metrics namespace come from `environment`; the previous
    modules are put back after the test.
    """

    def load(module: str, environment: Mapping[str, str]) -> ModuleType:
        merged = POWERTOOLS_TEST_ENV | dict(environment)
        for name, value in merged.items():
            monkeypatch.setenv(name, value)
        for name in (module, "streamscore.core.observability"):
            monkeypatch.delitem(sys.modules, name, raising=False)
        # Powertools configures a service's logger once per process (the std logger is
        # global) and binds its handler to the sys.stdout of that moment: forget it, so the
        # fresh Logger writes to this test's stdout rather than to an earlier test's
        service = logging.getLogger(merged.get("POWERTOOLS_SERVICE_NAME", "service_undefined"))
        for handler in list(service.handlers):
            service.removeHandler(handler)
        for marker in [a for a in vars(service) if a == "init" or a.startswith("powertools_")]:
            monkeypatch.delattr(service, marker)
        return importlib.import_module(module)

    return load


@dataclass(frozen=True)
class FakeLambdaContext:
    function_name: str = "streamscore-local"
    function_version: str = "$LATEST"
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:streamscore-local"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/streamscore-local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


def emitted_metrics(stdout: str) -> dict[str, float]:
    """The EMF metrics a handler printed (summed per name when several blobs were flushed)."""
    totals: Counter[str] = Counter()
    for line in stdout.splitlines():
        if not line.startswith("{"):
            continue
        blob = json.loads(line)
        if "_aws" not in blob:
            continue
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = blob[metric["Name"]]
                totals[metric["Name"]] += sum(value) if isinstance(value, list) else value
    return dict(totals)


def log_lines(stdout: str) -> list[dict[str, Any]]:
    """The structured log lines a handler printed (EMF blobs left out)."""
    lines = []
    for line in stdout.splitlines():
        if line.startswith("{"):
            blob = json.loads(line)
            if "_aws" not in blob:
                lines.append(blob)
    return lines
