"""The preprocess stage's ports on AWS: card states and feature items in DynamoDB, feature records on Kinesis."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from streamscore.aws.dynamodb import BatchTable, expires_at
from streamscore.aws.kinesis import StreamWriter
from streamscore.core.feature_record import FeatureRecord
from streamscore.core.ids import CardId, TransactionId
from streamscore.preprocess.features import CardState
from streamscore.preprocess.ports import CardRecord


class DynamoStateStore:
    """EntityStateTable: one item per card, its state and its pending feature records."""

    def __init__(self, table: BatchTable, ttl_days: int):
        self.table = table
        self.ttl_days = ttl_days

    def load(self, card_ids: Sequence[CardId]) -> tuple[dict[CardId, CardRecord], set[CardId]]:
        found, failed = self.table.get_many({"card_id": c} for c in card_ids)
        cards: dict[CardId, CardRecord] = {}
        for key, item in found.items():
            pending = {
                TransactionId(t): _feature_record(doc) for t, doc in item.get("pending", {}).items()
            }
            cards[CardId(key[0])] = CardRecord(CardState.from_dict(item), pending)
        return cards, {CardId(key[0]) for key in failed}

    def save(self, cards: Sequence[CardRecord], now: datetime) -> set[CardId]:
        expires = expires_at(now, self.ttl_days)
        items = [
            c.state.to_dict() | {"pending": dict(c.pending), "expires_at": expires} for c in cards
        ]
        return {CardId(key[0]) for key in self.table.put_many(items)}


def _feature_record(item: dict[str, Any]) -> FeatureRecord:
    """A feature record read back from DynamoDB: features as floats, no expiry (this stage wrote it)."""
    record = {k: v for k, v in item.items() if k != "expires_at"}
    record["features"] = {name: float(v) for name, v in record["features"].items()}
    if "card_age_s" in record:
        record["card_age_s"] = float(record["card_age_s"])
    return cast(FeatureRecord, record)


class DynamoFeatureStore:
    """FeaturesTable: one feature record per transaction, the ledger of applied transactions."""

    def __init__(self, table: BatchTable, ttl_days: int):
        self.table = table
        self.ttl_days = ttl_days

    def load(
        self, transaction_ids: Sequence[TransactionId]
    ) -> tuple[dict[TransactionId, FeatureRecord], set[TransactionId]]:
        found, failed = self.table.get_many({"transaction_id": t} for t in transaction_ids)
        records = {TransactionId(key[0]): _feature_record(item) for key, item in found.items()}
        return records, {TransactionId(key[0]) for key in failed}

    def save(self, feature_records: Sequence[FeatureRecord], now: datetime) -> set[TransactionId]:
        expires = expires_at(now, self.ttl_days)
        items = [{**r, "expires_at": expires} for r in feature_records]
        return {TransactionId(key[0]) for key in self.table.put_many(items)}


class KinesisFeatureForwarder:
    """FeaturesStream: feature records as JSON, partition key card_id (keeps per-card order)."""

    def __init__(self, writer: StreamWriter, encode: Any):
        self.writer = writer
        self.encode = encode

    def forward(self, feature_records: Sequence[FeatureRecord]) -> set[TransactionId]:
        entries = [(r["card_id"], self.encode(r)) for r in feature_records]
        return {feature_records[i]["transaction_id"] for i in self.writer.put_records(entries)}
