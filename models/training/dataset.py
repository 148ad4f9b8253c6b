"""Training data: simulated transactions through the contract and the streaming feature code."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator import SimulatedBatch, encode_transaction
from streamscore.preprocess.contracts import Transaction
from streamscore.preprocess.features import FEATURE_NAMES, feature_vector, replay


@dataclass(frozen=True, slots=True)
class Dataset:
    """Feature matrix in FEATURE_NAMES order, labels, and each row's event time, pattern and weight."""

    features: np.ndarray  # float64 [n, len(FEATURE_NAMES)]
    is_fraud: np.ndarray  # int64 0/1
    timestamps: np.ndarray  # UTC epoch seconds, ascending
    patterns: np.ndarray  # pattern name per row ("legit" for legitimate)
    card_ages: (
        np.ndarray
    )  # seconds since the card's first transaction in the replay (not a feature)
    weights: np.ndarray | None = None  # each row's sample weight (None: 1 each)

    def row_weights(self) -> np.ndarray:
        return np.ones(len(self)) if self.weights is None else self.weights

    def __len__(self) -> int:
        return int(self.is_fraud.size)

    def subset(self, mask: np.ndarray) -> Dataset:
        return Dataset(
            features=self.features[mask],
            is_fraud=self.is_fraud[mask],
            timestamps=self.timestamps[mask],
            patterns=self.patterns[mask],
            card_ages=self.card_ages[mask],
            weights=None if self.weights is None else self.weights[mask],
        )


def build_dataset(batch: SimulatedBatch) -> Dataset:
    """Parse every transaction from its wire bytes with the contract, then replay the features.

    The contract is strict, so a JSON-shaped dict (event_time as text) only validates in JSON
    mode; parsing the encoded bytes is exactly what the preprocess function does with a record.
    """
    transactions = [
        Transaction.model_validate_json(encode_transaction(raw)) for raw in batch.transactions
    ]
    replayed = list(replay(transactions))
    rows = [feature_vector(features) for features, _ in replayed]
    matrix = np.array(rows, dtype=np.float64).reshape(len(rows), len(FEATURE_NAMES))
    return Dataset(
        features=matrix,
        is_fraud=batch.is_fraud.astype(np.int64),
        timestamps=batch.timestamps.copy(),
        patterns=batch.patterns,
        card_ages=np.array([age for _, age in replayed], dtype=np.float64),
    )
