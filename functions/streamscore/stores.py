"""The domain's ports on AWS: card states, features, quarantine and monitoring in DynamoDB, features on Kinesis."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from streamscore.adapters.dynamodb import BatchTable, serialize
from streamscore.adapters.events import EventPublisher
from streamscore.adapters.kinesis import StreamWriter
from streamscore.adapters.retry import translate_error
from streamscore.features import CardState
from streamscore.items import from_item_value, to_item_value


def _expires_at(now: datetime, ttl_days: int) -> int:
    return int(now.timestamp()) + ttl_days * 86400


class DynamoStateStore:
    """EntityStateTable: one item per card."""

    def __init__(self, table: BatchTable, ttl_days: int):
        self.table = table
        self.ttl_days = ttl_days

    def load(self, card_ids: Sequence[str]) -> tuple[dict[str, CardState], set[str]]:
        found, failed = self.table.get_many({"card_id": c} for c in card_ids)
        states = {key[0]: CardState.from_dict(from_item_value(item)) for key, item in found.items()}
        return states, {key[0] for key in failed}

    def save(self, states: Sequence[CardState], now: datetime) -> set[str]:
        items = [
            to_item_value(s.to_dict()) | {"expires_at": _expires_at(now, self.ttl_days)}
            for s in states
        ]
        return {key[0] for key in self.table.put_many(items)}


class DynamoFeatureStore:
    """FeaturesTable: one feature record per transaction, expiring after its TTL."""

    def __init__(self, table: BatchTable, ttl_days: int):
        self.table = table
        self.ttl_days = ttl_days

    def load(self, transaction_ids: Sequence[str]) -> tuple[dict[str, dict[str, Any]], set[str]]:
        found, failed = self.table.get_many({"transaction_id": t} for t in transaction_ids)
        records = {}
        for key, item in found.items():
            record = from_item_value(item)
            record.pop("expires_at", None)
            record["features"] = {name: float(v) for name, v in record["features"].items()}
            records[key[0]] = record
        return records, {key[0] for key in failed}

    def save(self, feature_records: Sequence[dict[str, Any]], now: datetime) -> set[str]:
        expires = _expires_at(now, self.ttl_days)
        items = [to_item_value(r) | {"expires_at": expires} for r in feature_records]
        return {key[0] for key in self.table.put_many(items)}


class KinesisFeatureForwarder:
    """FeaturesStream: feature records as JSON, partition key card_id (keeps per-card order)."""

    def __init__(self, writer: StreamWriter, encode: Any):
        self.writer = writer
        self.encode = encode

    def forward(self, feature_records: Sequence[dict[str, Any]]) -> set[str]:
        entries = [(r["card_id"], self.encode(r)) for r in feature_records]
        return {feature_records[i]["transaction_id"] for i in self.writer.put_records(entries)}


class DynamoQuarantineStore:
    """QuarantineTable: one item per bad record, keyed by its stream position."""

    def __init__(self, table: BatchTable):
        self.table = table

    def save(self, items: Sequence[dict[str, Any]]) -> set[str]:
        if not items:
            return set()
        return {key[0] for key in self.table.put_many(to_item_value(i) for i in items)}


class DynamoMonitoringStore:
    """MonitoringTable: single items written whole (batch stats, histograms, reports)."""

    def __init__(self, client: Any, table_name: str):
        self.client = client
        self.table_name = table_name

    def put(self, item: dict[str, Any]) -> None:
        try:
            self.client.put_item(TableName=self.table_name, Item=serialize(to_item_value(item)))
        except (ClientError, BotoCoreError) as error:
            raise translate_error(error, f"DynamoDB PutItem on {self.table_name}") from error


class DynamoPredictionStore:
    """PredictionsTable: one prediction per transaction, expiring after its TTL."""

    def __init__(self, table: BatchTable, ttl_days: int):
        self.table = table
        self.ttl_days = ttl_days

    def load(self, transaction_ids: Sequence[str]) -> tuple[dict[str, dict[str, Any]], set[str]]:
        found, failed = self.table.get_many({"transaction_id": t} for t in transaction_ids)
        return (
            {key[0]: from_item_value(item) for key, item in found.items()},
            {key[0] for key in failed},
        )

    def save(self, predictions: Sequence[dict[str, Any]], now: datetime) -> set[str]:
        if not predictions:
            return set()
        expires = _expires_at(now, self.ttl_days)
        # A prediction is flat and its one float is the score: items.py's rule for floats,
        # applied directly (to_item_value's walk costs a third of the item's conversion).
        items = [
            p | {"score": Decimal(repr(p["score"])), "expires_at": expires} for p in predictions
        ]
        return {key[0] for key in self.table.put_many(items)}


class EventBridgeAlertPublisher:
    """Alerts as events of one source and detail type; each detail names its transaction_id."""

    def __init__(self, publisher: EventPublisher, source: str, detail_type: str):
        self.publisher = publisher
        self.source = source
        self.detail_type = detail_type

    def publish(self, details: Sequence[dict[str, Any]]) -> set[str]:
        entries = [
            {
                "Source": self.source,
                "DetailType": self.detail_type,
                "Detail": json.dumps(d, separators=(",", ":"), allow_nan=False),
            }
            for d in details
        ]
        return {details[i]["transaction_id"] for i in self.publisher.put_events(entries)}
