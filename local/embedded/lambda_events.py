"""Lambda event payloads exactly as the service delivers them (Kinesis batches, scheduled events).

Shared by the sample-event generator, the tests, the event-source emulator and the benchmarks.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
# Real sequence numbers are 56-digit decimals that grow along a shard.
SEQUENCE_BASE = 49_650 * 10**51


def stream_arn(stream_name: str, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:aws:kinesis:{region}:{account}:stream/{stream_name}"


def sequence_number(index: int) -> str:
    return str(SEQUENCE_BASE + index * 1_000_000)


@dataclass(frozen=True)
class KinesisEntry:
    """One record to deliver: its data bytes (or raw `data_b64` text) and partition key."""

    partition_key: str
    data: bytes = b""
    sequence_number: str = ""
    arrival: float = 1_767_225_600.0
    data_b64: str | None = None  # overrides `data` to deliver text that is not base64


def kinesis_event(
    entries: Sequence[KinesisEntry],
    stream_name: str,
    shard_id: str = "shardId-000000000000",
    first_index: int = 0,
    region: str = REGION,
) -> dict[str, Any]:
    """A Kinesis event for a Lambda function: one shard, records in sequence order."""
    records = []
    for offset, entry in enumerate(entries):
        sequence = entry.sequence_number or sequence_number(first_index + offset)
        data = (
            entry.data_b64 if entry.data_b64 is not None else base64.b64encode(entry.data).decode()
        )
        records.append(
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": entry.partition_key,
                    "sequenceNumber": sequence,
                    "data": data,
                    "approximateArrivalTimestamp": entry.arrival,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard_id}:{sequence}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": f"arn:aws:iam::{ACCOUNT}:role/streamscore-function-role",
                "awsRegion": region,
                "eventSourceARN": stream_arn(stream_name, region),
            }
        )
    return {"Records": records}


def scheduled_event(
    time: str, rule_name: str = "streamscore-DriftSchedule", region: str = REGION
) -> dict[str, Any]:
    """The event an EventBridge schedule delivers to its target function."""
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": time,
        "region": region,
        "resources": [f"arn:aws:events:{region}:{ACCOUNT}:rule/{rule_name}"],
        "detail": {},
    }


def bus_event(
    detail_type: str, source: str, detail: dict[str, Any], time: str, region: str = REGION
) -> dict[str, Any]:
    """An event of the stack's bus as its rule delivers it to a target function."""
    return {
        "version": "0",
        "id": "3c0f7a52-9d1e-4d43-8f0b-6c2b0d5e4f11",
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": time,
        "region": region,
        "resources": [],
        "detail": detail,
    }
