"""The scoring stage's ports on AWS: predictions (each created with its count) in DynamoDB, alerts on EventBridge."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from streamscore.aws.dynamodb import expires_at
from streamscore.aws.events import EventPublisher
from streamscore.aws.facts import TransactionFactStore
from streamscore.core.ids import TransactionId
from streamscore.core.monitoring import Fact


class DynamoPredictionStore(TransactionFactStore):
    """PredictionsTable: one prediction per transaction, created with its counts, expiring after its TTL."""

    def create(
        self, facts: Sequence[Fact], now: datetime
    ) -> tuple[set[TransactionId], set[TransactionId]]:
        created, failed = self._create(facts, now)
        return {TransactionId(k) for k in created}, {TransactionId(k) for k in failed}

    def save(self, predictions: Sequence[dict[str, Any]], now: datetime) -> set[TransactionId]:
        if not predictions:
            return set()
        expires = expires_at(now, self.ttl_days)
        items = [p | {"expires_at": expires} for p in predictions]
        return {TransactionId(key[0]) for key in self.table.put_many(items)}


def prediction_condition(fact: Fact) -> tuple[str, dict[str, Any]]:
    """scoring/shadow.py `creates_prediction` as a DynamoDB condition: a prediction is new when
    none is stored, or the stored one is of another model version (and, when the write adds a
    challenger's shadow counts, does not list that challenger in shadow_versions; contains() of a
    missing attribute is false)."""
    if not fact.also:
        return (
            "attribute_not_exists(transaction_id) OR model_version <> :version",
            {":version": fact.item["model_version"]},
        )
    return (
        "attribute_not_exists(transaction_id) OR "
        "(model_version <> :version AND NOT contains(shadow_versions, :challenger))",
        {":version": fact.item["model_version"], ":challenger": fact.item["challenger_version"]},
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

    def publish(self, details: Sequence[dict[str, Any]]) -> set[TransactionId]:
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
        return {TransactionId(new[i]["transaction_id"]) for i in failed}
