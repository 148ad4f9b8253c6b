"""What the labels stage reads and writes through: stored labels (each written with its quality
counts), the predictions they join, and the quarantine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from streamscore.core.ids import TransactionId
from streamscore.core.monitoring import Fact
from streamscore.core.ports import QuarantineStore


class LabelStore(Protocol):
    def load(
        self, transaction_ids: Sequence[TransactionId]
    ) -> tuple[dict[TransactionId, dict[str, Any]], set[TransactionId]]:
        """Stored labels by transaction id, and the ids whose read still failed."""
        ...

    def write(
        self, facts: Sequence[Fact], now: datetime
    ) -> tuple[set[TransactionId], set[TransactionId], set[TransactionId]]:
        """Write each label with its counts on the condition that the stored label is the one
        read (each fact's `item["replaces"]`, none: no label stored): ids written, ids whose
        condition failed (something else wrote the label since), ids whose write still failed."""
        ...


class PredictionReader(Protocol):
    def load(
        self, transaction_ids: Sequence[TransactionId]
    ) -> tuple[dict[TransactionId, dict[str, Any]], set[TransactionId]]:
        """Stored predictions by transaction id, and the ids whose read still failed."""
        ...


@dataclass(frozen=True)
class LabelPorts:
    labels: LabelStore
    predictions: PredictionReader
    quarantine: QuarantineStore
