"""The template's tables and streams in moto, and the fake credentials the moto clients sign with.

`LocalStack` is what the integration tests (and the fuzz harness) look into: every DynamoDB
table and Kinesis stream of template.yaml, created with the template's own key schemas,
indexes and stream modes (`create_local_stack`), by logical id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer

from embedded.template import (
    Template,
    parameter_values,
    resolve_conditions,
    stream_definitions,
    table_definitions,
)
from streamscore.core.items import from_item_value

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
MODEL_DIR = ROOT / "models" / "artifacts"
EVENTS = ROOT / "events"
REGION = "us-east-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
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

    def local_name(self, logical_id: str) -> str:
        """A table's or stream's local name; for any other resource (the artifacts bucket) a
        name of its own, which a test creates when it uses that resource."""
        if logical_id in self.tables or logical_id in self.streams:
            return self.resource_name(logical_id)
        return f"streamscore-{logical_id.lower()}-local"

    def function_environment(
        self, function_id: str, overrides: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The environment template.yaml gives `function_id` (Globals + its own), resolved locally.

        `Ref`s to parameters take their defaults, `Ref`s to resources their local names
        (`local_name`); anything else (GetAtt of a bus...) must come in `overrides`.
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
        for name, raw in variables.items():
            if name in overrides:
                continue
            value = (
                resolve_conditions(self.template, raw, parameters)
                if isinstance(raw, dict) and "Fn::If" in raw
                else raw
            )
            if isinstance(value, (str, int, float)):
                environment[name] = str(value)
            elif isinstance(value, dict) and set(value) == {"Ref"}:
                ref = value["Ref"]
                environment[name] = parameters[ref] if ref in parameters else self.local_name(ref)
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


def create_local_stack(template: Template) -> LocalStack:
    """Every table and stream of `template`, created in moto (call it inside `mock_aws`)."""
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
    return stack


def hash_keys(stack: LocalStack) -> dict[str, str]:
    """Each table's name -> its hash key's attribute name, from the template."""
    keys = {}
    for logical_id, name in stack.tables.items():
        schema = stack.template["Resources"][logical_id]["Properties"]["KeySchema"]
        keys[name] = next(k["AttributeName"] for k in schema if k["KeyType"] == "HASH")
    return keys
