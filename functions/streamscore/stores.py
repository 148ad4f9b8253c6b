"""The domain's ports on AWS: card states, features, quarantine and monitoring in DynamoDB, features on Kinesis."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Executor
from datetime import datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from streamscore.adapters._batching import fan_out
from streamscore.adapters.dynamodb import BatchTable, deserialize, serialize
from streamscore.adapters.events import EventPublisher
from streamscore.adapters.kinesis import StreamWriter
from streamscore.adapters.retry import translate_error
from streamscore.features import CardState
from streamscore.items import from_item_value, to_item_value
from streamscore.preprocess import CardRecord


def _expires_at(now: datetime, ttl_days: int) -> int:
    return int(now.timestamp()) + ttl_days * 86400


class DynamoStateStore:
    """EntityStateTable: one item per card, its state and its pending feature records."""

    def __init__(self, table: BatchTable, ttl_days: int):
        self.table = table
        self.ttl_days = ttl_days

    def load(self, card_ids: Sequence[str]) -> tuple[dict[str, CardRecord], set[str]]:
        found, failed = self.table.get_many({"card_id": c} for c in card_ids)
        cards = {}
        for key, item in found.items():
            plain = from_item_value(item)
            pending = {t: _feature_record(doc) for t, doc in plain.get("pending", {}).items()}
            cards[key[0]] = CardRecord(CardState.from_dict(plain), pending)
        return cards, {key[0] for key in failed}

    def save(self, cards: Sequence[CardRecord], now: datetime) -> set[str]:
        expires = _expires_at(now, self.ttl_days)
        items = [
            to_item_value(c.state.to_dict() | {"pending": dict(c.pending)})
            | {"expires_at": expires}
            for c in cards
        ]
        return {key[0] for key in self.table.put_many(items)}


def _feature_record(item: dict[str, Any]) -> dict[str, Any]:
    """A feature record read back from DynamoDB: features as floats, no expiry."""
    record = {k: v for k, v in item.items() if k != "expires_at"}
    record["features"] = {name: float(v) for name, v in record["features"].items()}
    return record


class DynamoFeatureStore:
    """FeaturesTable: one feature record per transaction, the ledger of applied transactions.

    An item lives `ttl_days`, and never less than a day past the stream's retention: a
    record that can still be replayed must find its transaction's entry, or it would be
    applied twice.
    """

    def __init__(self, table: BatchTable, ttl_days: int, stream_retention_hours: int = 24):
        self.table = table
        self.ttl_days = max(ttl_days, -(-stream_retention_hours // 24) + 1)

    def load(self, transaction_ids: Sequence[str]) -> tuple[dict[str, dict[str, Any]], set[str]]:
        found, failed = self.table.get_many({"transaction_id": t} for t in transaction_ids)
        records = {key[0]: _feature_record(from_item_value(item)) for key, item in found.items()}
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
    """Alerts as events of one source and detail type; each detail names its transaction_id and alert_id.

    It remembers the alert ids EventBridge accepted (the last `remembered` of them), so a
    retry in the same container does not put an accepted alert again when only the
    prediction write after it failed.
    """

    def __init__(
        self, publisher: EventPublisher, source: str, detail_type: str, remembered: int = 10_000
    ):
        self.publisher = publisher
        self.source = source
        self.detail_type = detail_type
        self._accepted: OrderedDict[str, None] = OrderedDict()
        self._remembered = remembered
        self._lock = threading.Lock()

    def publish(self, details: Sequence[dict[str, Any]]) -> set[str]:
        with self._lock:
            new = [d for d in details if d["alert_id"] not in self._accepted]
        entries = [
            {
                "Source": self.source,
                "DetailType": self.detail_type,
                "Detail": json.dumps(d, separators=(",", ":"), allow_nan=False),
            }
            for d in new
        ]
        failed = set(self.publisher.put_events(entries)) if entries else set()
        with self._lock:
            for i, detail in enumerate(new):
                if i not in failed:
                    self._accepted[detail["alert_id"]] = None
            while len(self._accepted) > self._remembered:
                self._accepted.popitem(last=False)
        return {new[i]["transaction_id"] for i in failed}


class DynamoWindowReader:
    """MonitoringTable's WindowIndex: every item of some hour buckets recorded within [start, end].

    One Query per bucket, all pages, the buckets concurrently on `executor`.
    """

    def __init__(
        self,
        client: Any,
        table_name: str,
        index_name: str = "WindowIndex",
        executor: Executor | None = None,
        page_size: int | None = None,  # items per Query page; DynamoDB stops at 1 MB anyway
    ):
        self.client = client
        self.table_name = table_name
        self.index_name = index_name
        self.executor = executor
        self.page_size = page_size

    def read(self, window_keys: Sequence[str], start: str, end: str) -> list[dict[str, Any]]:
        def query(keys: Sequence[str]) -> list[dict[str, Any]]:
            return self._query(keys[0], start, end)

        pages = fan_out(query, [[k] for k in window_keys], self.executor)
        return [item for page in pages for item in page]

    def _query(self, key: str, start: str, end: str) -> list[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": self.index_name,
            "KeyConditionExpression": "window_key = :key AND recorded_at BETWEEN :start AND :end",
            "ExpressionAttributeValues": serialize({":key": key, ":start": start, ":end": end}),
        }
        if self.page_size is not None:
            request["Limit"] = self.page_size
        items: list[dict[str, Any]] = []
        while True:
            try:
                page = self.client.query(**request)
            except (ClientError, BotoCoreError) as error:
                raise translate_error(
                    error, f"DynamoDB Query on {self.table_name}/{self.index_name}"
                ) from error
            items += [from_item_value(deserialize(raw)) for raw in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class S3ReportStore:
    """Report objects in the artifacts bucket (encrypted by the bucket's default key)."""

    def __init__(self, client: Any, bucket: str):
        self.client = client
        self.bucket = bucket

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def put(self, key: str, body: bytes, content_type: str) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        except (ClientError, BotoCoreError) as error:
            raise translate_error(error, f"S3 PutObject {self.uri(key)}") from error


class DynamoRetrainingCooldown:
    """One MonitoringTable item per model version holding its last retraining trigger.

    A claim is one conditional UpdateItem: it succeeds when no trigger is recorded or
    the last one is older than the cooldown, so of concurrent claims exactly one wins.
    """

    def __init__(self, client: Any, table_name: str):
        self.client = client
        self.table_name = table_name

    @staticmethod
    def key(model_version: str) -> dict[str, Any]:
        return serialize({"pk": f"RETRAIN#{model_version}", "sk": "COOLDOWN"})

    def claim(
        self, model_version: str, claim_id: str, now: datetime, cooldown_hours: float
    ) -> bool:
        cutoff = now.timestamp() - cooldown_hours * 3600
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self.key(model_version),
                UpdateExpression=(
                    "SET triggered_epoch = :now, triggered_at = :at, claim_id = :claim, "
                    "model_version = :version"
                ),
                ConditionExpression="attribute_not_exists(triggered_epoch) OR triggered_epoch < :cutoff",
                ExpressionAttributeValues=serialize(
                    to_item_value(
                        {
                            ":now": now.timestamp(),
                            ":at": now.isoformat(timespec="milliseconds"),
                            ":claim": claim_id,
                            ":version": model_version,
                            ":cutoff": cutoff,
                        }
                    )
                ),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise translate_error(error, f"DynamoDB UpdateItem on {self.table_name}") from error
        except BotoCoreError as error:
            raise translate_error(error, f"DynamoDB UpdateItem on {self.table_name}") from error
        return True

    def release(self, model_version: str, claim_id: str) -> None:
        """Remove our trigger time, unless another claim has replaced ours since."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self.key(model_version),
                UpdateExpression="REMOVE triggered_epoch, triggered_at SET released_claim_id = :claim",
                ConditionExpression="claim_id = :claim",
                ExpressionAttributeValues=serialize({":claim": claim_id}),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return
            raise translate_error(error, f"DynamoDB UpdateItem on {self.table_name}") from error
        except BotoCoreError as error:
            raise translate_error(error, f"DynamoDB UpdateItem on {self.table_name}") from error
