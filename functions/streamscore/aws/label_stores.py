"""The labels stage's ports on AWS: LabelsTable (each label written with its quality counts) and
PredictionsTable read by transaction id."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from streamscore.aws.dynamodb import TransactionItemReader
from streamscore.aws.facts import TransactionFactStore
from streamscore.core.ids import TransactionId
from streamscore.core.monitoring import Fact


def label_condition(fact: Fact) -> tuple[str, dict[str, Any]]:
    """A label is written over the stored label it was compared with, or where none is stored."""
    replaces = fact.item.get("replaces")
    if replaces is None:
        return "attribute_not_exists(transaction_id)", {}
    return "label_key = :replaces", {":replaces": replaces}


class DynamoLabelStore(TransactionFactStore):
    """LabelsTable: one item per labelled transaction, its label in force, expiring after its TTL."""

    def write(
        self, facts: Sequence[Fact], now: datetime
    ) -> tuple[set[TransactionId], set[TransactionId], set[TransactionId]]:
        raced: set[str] = set()
        done, failed = self._create(facts, now, raced)
        return (
            {TransactionId(k) for k in done - raced},
            {TransactionId(k) for k in raced},
            {TransactionId(k) for k in failed},
        )


class DynamoPredictionReader(TransactionItemReader):
    """PredictionsTable read by transaction id (strongly consistent)."""
