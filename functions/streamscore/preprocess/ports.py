"""What the preprocess stage reads and writes through: card states, feature items, the features stream."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from streamscore.core.feature_record import FeatureRecord
from streamscore.core.ids import CardId, TransactionId
from streamscore.core.ports import QuarantineStore
from streamscore.preprocess.features import CardState


@dataclass(frozen=True)
class CardRecord:
    """One EntityStateTable item: the card's state and the applied feature records not yet stored."""

    state: CardState
    pending: Mapping[TransactionId, FeatureRecord] = field(
        default_factory=dict
    )  # by transaction id


class StateStore(Protocol):
    def load(self, card_ids: Sequence[CardId]) -> tuple[dict[CardId, CardRecord], set[CardId]]:
        """Cards found, and card ids whose read still failed after retries."""
        ...

    def save(self, cards: Sequence[CardRecord], now: datetime) -> set[CardId]:
        """Card ids whose write still failed after retries."""
        ...


class FeatureStore(Protocol):
    def load(
        self, transaction_ids: Sequence[TransactionId]
    ) -> tuple[dict[TransactionId, FeatureRecord], set[TransactionId]]: ...

    def save(self, feature_records: Sequence[FeatureRecord], now: datetime) -> set[TransactionId]:
        """Transaction ids whose write still failed after retries."""
        ...


class FeatureForwarder(Protocol):
    def forward(self, feature_records: Sequence[FeatureRecord]) -> set[TransactionId]:
        """Transaction ids whose put still failed after retries."""
        ...


@dataclass(frozen=True)
class PreprocessPorts:
    states: StateStore
    features: FeatureStore
    forwarder: FeatureForwarder
    quarantine: QuarantineStore
