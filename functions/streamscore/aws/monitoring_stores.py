"""Ports every stage writes through: quarantine items (each with its count) and whole MonitoringTable items."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from streamscore.aws.dynamodb import expires_at, serialize
from streamscore.aws.facts import DynamoFactWriter
from streamscore.aws.retry import translate_error
from streamscore.core.ids import RecordId
from streamscore.core.monitoring import (
    NO_VERSION,
    QUARANTINE,
    CountKey,
    Fact,
    quarantine_counts,
    quarantine_hour,
    source_of,
)


class DynamoQuarantineStore:
    """QuarantineTable: one item per bad record, keyed by its record id (stream position), created with its count."""

    def __init__(self, facts: DynamoFactWriter, ttl_days: int, counts_ttl_days: int):
        self.facts = facts
        self.ttl_days = ttl_days
        self.counts_ttl_days = counts_ttl_days

    def save(self, items: Sequence[dict[str, Any]]) -> set[RecordId]:
        if not items:
            return set()
        quarantined_at = datetime.fromisoformat(items[0]["quarantined_at"])
        expires = expires_at(quarantined_at, self.ttl_days)
        facts = [
            Fact(
                item=item | {"expires_at": expires},
                key=item["record_id"],
                count_key=CountKey(
                    QUARANTINE,
                    NO_VERSION,
                    quarantine_hour(item),
                    source_of(item["stream_name"], item["shard_id"]),
                ),
                counts=quarantine_counts(item["stage"], item["reason"]),
            )
            for item in items
        ]
        failed = self.facts.create(facts, expires_at(quarantined_at, self.counts_ttl_days))[1]
        return {RecordId(key) for key in failed}


class DynamoMonitoringStore:
    """MonitoringTable: single items written whole (batch stats, histograms, reports)."""

    def __init__(self, client: Any, table_name: str, ttl_days: int):
        self.client = client
        self.table_name = table_name
        self.ttl_days = ttl_days

    def put(self, item: dict[str, Any]) -> None:
        expires = expires_at(datetime.fromisoformat(item["recorded_at"]), self.ttl_days)
        try:
            self.client.put_item(
                TableName=self.table_name, Item=serialize(item | {"expires_at": expires})
            )
        except (ClientError, BotoCoreError) as error:
            raise translate_error(error, f"DynamoDB PutItem on {self.table_name}") from error
