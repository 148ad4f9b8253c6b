"""The labels stage's ports on AWS: LabelsTable (each label written with its quality counts) and
PredictionsTable read by transaction id."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from streamscore.aws.dynamodb import BatchTable, by_transaction_id, expires_at
from streamscore.aws.facts import DynamoFactWriter
from streamscore.core.ids import TransactionId
from streamscore.core.monitoring import Fact


def label_condition(fact: Fact) -> tuple[str, dict[str, Any]]:
    """A label is written over the stored label it was compared with, or where none is stored."""
    replaces = fact.item.get("replaces")
    if replaces is None:
        return "attribute_not_exists(transaction_id)", {}
    return "label_key = :replaces", {":replaces": replaces}


class DynamoLabelStore:
    """LabelsTable: one item per labelled transaction, its label in force, expiring after its TTL."""

    def __init__(
        self, table: BatchTable, facts: DynamoFactWriter, ttl_days: int, counts_ttl_days: int
    ):
        self.table = table
        self.facts = facts
        self.ttl_days = ttl_days
        self.counts_ttl_days = counts_ttl_days

    def load(
        self, transaction_ids: Sequence[TransactionId]
    ) -> tuple[dict[TransactionId, dict[str, Any]], set[TransactionId]]:
        return by_transaction_id(self.table, transaction_ids, TransactionId)

    def write(
        self, facts: Sequence[Fact], now: datetime
    ) -> tuple[set[TransactionId], set[TransactionId], set[TransactionId]]:
        expires = expires_at(now, self.ttl_days)
        for fact in facts:
            fact.item = fact.item | {"expires_at": expires}
        raced: set[str] = set()
        done, failed = self.facts.create(facts, expires_at(now, self.counts_ttl_days), raced)
        return (
            {TransactionId(k) for k in done - raced},
            {TransactionId(k) for k in raced},
            {TransactionId(k) for k in failed},
        )


class DynamoPredictionReader:
    """PredictionsTable read by transaction id (strongly consistent)."""

    def __init__(self, table: BatchTable):
        self.table = table

    def load(
        self, transaction_ids: Sequence[TransactionId]
    ) -> tuple[dict[TransactionId, dict[str, Any]], set[TransactionId]]:
        return by_transaction_id(self.table, transaction_ids, TransactionId)
