"""The domain's ports on AWS: card states, features, quarantine and monitoring in DynamoDB, features on Kinesis."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Executor
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from botocore.exceptions import BotoCoreError, ClientError

from streamscore.adapters._batching import fan_out
from streamscore.adapters.dynamodb import BatchTable, deserialize, serialize
from streamscore.adapters.events import EventPublisher
from streamscore.adapters.kinesis import StreamWriter
from streamscore.adapters.retry import translate_error
from streamscore.counts import (
    NO_VERSION,
    QUARANTINE,
    CountKey,
    Fact,
    quarantine_counts,
    quarantine_hour,
    source_of,
)
from streamscore.drift_report import TriggerClaim
from streamscore.errors import RetryableError
from streamscore.fact_writer import DynamoFactWriter
from streamscore.features import CardState
from streamscore.items import from_item_value, to_item_value
from streamscore.preprocess import CardRecord
from streamscore.records import utc_iso_ms


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
    """FeaturesTable: one feature record per transaction, the ledger of applied transactions."""

    def __init__(self, table: BatchTable, ttl_days: int):
        self.table = table
        self.ttl_days = ttl_days

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
    """QuarantineTable: one item per bad record, keyed by its record id (stream position), created with its count."""

    def __init__(self, facts: DynamoFactWriter, counts_ttl_days: int):
        self.facts = facts
        self.counts_ttl_days = counts_ttl_days

    def save(self, items: Sequence[dict[str, Any]]) -> set[str]:
        if not items:
            return set()
        facts = [
            Fact(
                item=item,
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
        quarantined_at = datetime.fromisoformat(items[0]["quarantined_at"])
        return self.facts.create(facts, _expires_at(quarantined_at, self.counts_ttl_days))[1]


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
    """PredictionsTable: one prediction per transaction, created with its counts, expiring after its TTL."""

    def __init__(
        self, table: BatchTable, facts: DynamoFactWriter, ttl_days: int, counts_ttl_days: int
    ):
        self.table = table
        self.facts = facts
        self.ttl_days = ttl_days
        self.counts_ttl_days = counts_ttl_days

    def load(self, transaction_ids: Sequence[str]) -> tuple[dict[str, dict[str, Any]], set[str]]:
        found, failed = self.table.get_many({"transaction_id": t} for t in transaction_ids)
        return (
            {key[0]: from_item_value(item) for key, item in found.items()},
            {key[0] for key in failed},
        )

    def create(self, facts: Sequence[Fact], now: datetime) -> tuple[set[str], set[str]]:
        expires = _expires_at(now, self.ttl_days)
        for fact in facts:
            fact.item = fact.item | {"expires_at": expires}
        return self.facts.create(facts, _expires_at(now, self.counts_ttl_days))

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


def prediction_condition(item: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A prediction is new when none is stored, or the stored one is of another model version."""
    return (
        "attribute_not_exists(transaction_id) OR model_version <> :version",
        {":version": item["model_version"]},
    )


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
    """Report objects in the artifacts bucket, encrypted by the bucket's default (the stack key).

    It sends no encryption headers on purpose: the bucket policy lets a put without them
    through and refuses any other algorithm or key (template.yaml, ArtifactsBucketPolicy).
    """

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
    """One MonitoringTable item per model version: its retraining trigger, a small state machine.

    `trigger_id` and `status` (`sending`, then `sent`) are the latest claim and
    `claimed_epoch` its start (the lease runs from it); `triggered_epoch`/`triggered_at`
    the latest completed trigger (the cooldown runs from it); `sent_triggers` the latest
    completed trigger ids, newest last (a re-run of their windows sends nothing).
    `accepted` holds "trigger_id#DetailType" for each detail type EventBridge accepted of a
    trigger not completed yet: keyed by trigger id, it survives the takeover of a dead
    claim, so a later run of that trigger sends only what is missing. Every change is one
    conditional UpdateItem, so of concurrent claims one wins. The rules are those of
    `RetrainingCooldown` in drift_report.py.
    """

    SENDING = "sending"
    SENT = "sent"
    HISTORY = 50  # completed trigger ids kept (~4 KB): past them a re-run of a window sends again
    ATTEMPTS = 3  # claims tried while the item keeps changing under us
    NAMES: ClassVar[dict[str, str]] = {"#status": "status"}  # a reserved word
    FREE = (
        "NOT contains(sent_triggers, :id)"
        " AND (attribute_not_exists(trigger_id) OR trigger_id <> :id)"
        " AND (attribute_not_exists(triggered_epoch) OR triggered_epoch < :cutoff)"
        " AND (attribute_not_exists(#status) OR #status <> :sending OR claimed_epoch < :lease)"
    )
    OURS = "trigger_id = :id AND #status = :sending"

    def __init__(self, client: Any, table_name: str):
        self.client = client
        self.table_name = table_name

    @staticmethod
    def key(model_version: str) -> dict[str, Any]:
        return serialize({"pk": f"RETRAIN#{model_version}", "sk": "COOLDOWN"})

    def claim(
        self,
        model_version: str,
        trigger_id: str,
        now: datetime,
        cooldown_hours: float,
        lease_seconds: float,
    ) -> TriggerClaim:
        cutoff = now.timestamp() - cooldown_hours * 3600
        lease = now.timestamp() - lease_seconds
        ours = {":id": trigger_id, ":sending": self.SENDING}
        started = ours | {":now": now.timestamp(), ":at": utc_iso_ms(now)}
        for _ in range(self.ATTEMPTS):
            taken, item = self._update(
                model_version,
                "SET trigger_id = :id, #status = :sending, claimed_epoch = :now, "
                "claimed_at = :at, model_version = :version "
                "REMOVE claim_id, released_claim_id",  # the fields of the claims before these
                self.FREE,
                started | {":version": model_version, ":cutoff": cutoff, ":lease": lease},
            )
            if taken:
                return self._ours(model_version, trigger_id, item)
            if trigger_id in item.get("sent_triggers", []):
                return TriggerClaim(model_version, trigger_id, "sent")
            if item.get("trigger_id") == trigger_id and item.get("status") == self.SENDING:
                resumed, item = self._update(
                    model_version, "SET claimed_epoch = :now, claimed_at = :at", self.OURS, started
                )
                if resumed:
                    return self._ours(model_version, trigger_id, item)
                continue  # it changed hands in between: look again
            if float(item.get("triggered_epoch", cutoff - 1)) >= cutoff:
                return TriggerClaim(model_version, trigger_id, "cooldown")
            if item.get("status") == self.SENDING and float(item["claimed_epoch"]) >= lease:
                return TriggerClaim(model_version, trigger_id, "in_flight")
        raise RetryableError(
            f"the retraining cooldown of {model_version} kept changing while {trigger_id} "
            f"claimed it ({self.ATTEMPTS} attempts)"
        )

    def record(
        self, claim: TriggerClaim, accepted: frozenset[str], complete: bool, now: datetime
    ) -> bool:
        values: dict[str, Any] = {":id": claim.trigger_id, ":sending": self.SENDING}
        if complete:  # its accepted entries have served: the trigger is in sent_triggers now
            update = (
                "SET #status = :sent, triggered_epoch = :now, triggered_at = :at, "
                "sent_triggers = :history"
            )
            values |= {
                ":sent": self.SENT,
                ":now": now.timestamp(),
                ":at": utc_iso_ms(now),
                ":history": [*claim.history, claim.trigger_id][-self.HISTORY :],
            }
            entries = claim.accepted
            if entries:
                update += " DELETE accepted :entries"
        else:
            update = "ADD accepted :entries"
            entries = accepted - claim.accepted
            if not entries:
                return True
        string_set = {"SS": sorted(f"{claim.trigger_id}#{kind}" for kind in entries)}
        recorded, _ = self._update(
            claim.model_version,
            update,
            self.OURS,
            values,
            {":entries": string_set} if entries else {},
        )
        return recorded

    def _ours(self, model_version: str, trigger_id: str, item: dict[str, Any]) -> TriggerClaim:
        entries = (entry.rpartition("#") for entry in item.get("accepted", set()))
        return TriggerClaim(
            model_version,
            trigger_id,
            "ours",
            accepted=frozenset(kind for trigger, _, kind in entries if trigger == trigger_id),
            history=tuple(item.get("sent_triggers", [])),
        )

    def _update(
        self,
        model_version: str,
        update: str,
        condition: str,
        values: dict[str, Any],
        wire_values: dict[str, Any] | None = None,
    ) -> tuple[bool, dict[str, Any]]:
        """(True, the item after) when the condition held, else (False, the item it was held against).

        `wire_values` are values already in DynamoDB's format (a string set).
        """
        try:
            response = self.client.update_item(
                TableName=self.table_name,
                Key=self.key(model_version),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=self.NAMES,
                ExpressionAttributeValues=serialize(to_item_value(values)) | (wire_values or {}),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                held: dict[str, Any] = error.response.get("Item") or {}  # type: ignore[assignment]
                return False, from_item_value(deserialize(held))
            raise translate_error(error, f"DynamoDB UpdateItem on {self.table_name}") from error
        except BotoCoreError as error:
            raise translate_error(error, f"DynamoDB UpdateItem on {self.table_name}") from error
        return True, from_item_value(deserialize(response.get("Attributes", {})))
