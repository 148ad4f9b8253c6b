"""What the scoring stage writes through: predictions (with their counts) and alerts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from streamscore.core.ids import TransactionId
from streamscore.core.monitoring import Fact
from streamscore.core.ports import QuarantineStore


class PredictionStore(Protocol):
    def load(
        self, transaction_ids: Sequence[TransactionId]
    ) -> tuple[dict[TransactionId, dict[str, Any]], set[TransactionId]]:
        """Stored predictions by transaction id, and the ids whose read still failed."""
        ...

    def create(
        self, facts: Sequence[Fact], now: datetime
    ) -> tuple[set[TransactionId], set[TransactionId]]:
        """Create predictions not stored yet, with their counts: ids that exist now, ids that failed."""
        ...

    def save(self, predictions: Sequence[dict[str, Any]], now: datetime) -> set[TransactionId]:
        """Overwrite stored predictions; the transaction ids whose write still failed."""
        ...


class AlertPublisher(Protocol):
    def publish(self, alerts: Sequence[dict[str, Any]]) -> set[TransactionId]:
        """Transaction ids whose event still failed after retries."""
        ...


@dataclass(frozen=True)
class ScorePorts:
    predictions: PredictionStore
    alerts: AlertPublisher
    quarantine: QuarantineStore
