"""A DynamoDB stream read through the Kinesis calls the event-source emulator makes.

The emulator's shard pollers speak Kinesis (ListShards, GetShardIterator, GetRecords, records
with SequenceNumber, ApproximateArrivalTimestamp and Data). DynamoDB Streams has the same
shards, iterators and sequence numbers under other names; this adapter renames them, and keeps
each stream record whole (`STREAM_RECORD`) for the event Lambda sends a function mapped to a
table's stream (`dynamodb_event`). Data is the record's JSON: the emulator sizes batches by it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

STREAM_RECORD = "DynamoDBStreamRecord"
MAX_GET_RECORDS = 1000  # DynamoDB Streams' GetRecords Limit


def is_table_stream(arn: str) -> bool:
    return arn.startswith("arn:aws:dynamodb:") and "/stream/" in arn


def _epoch(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


class DynamoStreamAsKinesis:
    """The calls ShardPoller and EventSourceEmulator make of a Kinesis client, on DynamoDB Streams."""

    def __init__(self, streams: Any):
        self.streams = streams  # a boto3 dynamodbstreams client

    def list_shards(self, **call: Any) -> dict[str, Any]:
        shards: list[dict[str, Any]] = []
        start: dict[str, str] = {}
        while True:
            page = self.streams.describe_stream(StreamArn=call["StreamARN"], **start)
            description = page["StreamDescription"]
            shards += description["Shards"]
            if not description.get("LastEvaluatedShardId"):
                return {"Shards": shards}
            start = {"ExclusiveStartShardId": description["LastEvaluatedShardId"]}

    def get_shard_iterator(self, **call: Any) -> dict[str, Any]:
        position = call["ShardIteratorType"]
        if position not in ("TRIM_HORIZON", "LATEST"):
            raise ValueError(f"a DynamoDB stream starts at TRIM_HORIZON or LATEST, not {position}")
        return self.streams.get_shard_iterator(
            StreamArn=call["StreamARN"], ShardId=call["ShardId"], ShardIteratorType=position
        )

    def get_records(self, **call: Any) -> dict[str, Any]:
        limit = min(int(call.get("Limit", MAX_GET_RECORDS)), MAX_GET_RECORDS)
        page = self.streams.get_records(ShardIterator=call["ShardIterator"], Limit=limit)
        records = [
            {
                "SequenceNumber": r["dynamodb"]["SequenceNumber"],
                "ApproximateArrivalTimestamp": _epoch(r["dynamodb"]["ApproximateCreationDateTime"]),
                "PartitionKey": "",
                "Data": json.dumps(r, default=str).encode(),
                STREAM_RECORD: r,
            }
            for r in page["Records"]
        ]
        return {"Records": records, "NextShardIterator": page.get("NextShardIterator")}


def dynamodb_event(
    records: Sequence[Mapping[str, Any]], stream_arn: str, region: str
) -> dict[str, Any]:
    """The event Lambda sends for a batch of a table's stream records."""
    out = []
    for record in records:
        raw = record[STREAM_RECORD]
        dynamodb = dict(raw["dynamodb"])
        dynamodb["ApproximateCreationDateTime"] = int(
            _epoch(dynamodb["ApproximateCreationDateTime"])
        )
        out.append(
            {
                "eventID": raw["eventID"],
                "eventName": raw["eventName"],
                "eventVersion": raw.get("eventVersion", "1.1"),
                "eventSource": "aws:dynamodb",
                "awsRegion": region,
                "dynamodb": dynamodb,
                "eventSourceARN": stream_arn,
            }
        )
    return {"Records": out}
