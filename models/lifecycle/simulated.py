"""What a stack would have logged and labelled, straight from the simulator: feature-log rows and
LabelsTable items of simulated traffic scored by a model, in simulated time (no AWS).

The retrain's statistics need weeks of traffic and hundreds of frauds; the embedded stack
streams a few hundred records a second. This replays the same path offline: the transactions'
features from the streaming feature code (training/dataset.py), the served model's decisions
with the stack's decline sample (core/quality.py `in_decline_sample`), the labels production
would see (simulator/outcomes.py), each label received when it was labelled, each transaction
scored when it happened.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lifecycle.retrain import ServedModel
from lifecycle.training_set import SAMPLED, LoggedRow
from simulator import SimulatedBatch
from simulator.outcomes import production_labels
from streamscore.core.quality import in_decline_sample
from streamscore.preprocess.features import FEATURE_NAMES
from training.dataset import Dataset

_RANK = {"fraud": 1, "legit": 0}


@dataclass(frozen=True)
class Logged:
    rows: list[LoggedRow]
    labels: dict[str, dict[str, Any]]  # LabelsTable items by transaction id
    decisions: dict[str, int]


def _decide(score: float, thresholds: Mapping[str, Any]) -> str:
    if score >= float(thresholds["decline"]):
        return "decline"
    if score >= float(thresholds["review"]):
        return "review"
    return "approve"


def _rows(
    batch: SimulatedBatch, data: Dataset, model: ServedModel, sample_share: float
) -> Iterator[tuple[LoggedRow, dict[str, Any]]]:
    scores = model.scores(data.features)
    thresholds = model.card["thresholds"]
    for i, raw in enumerate(batch.transactions):
        tid = str(raw["transaction_id"])
        decision = _decide(float(scores[i]), thresholds)
        guard = None
        if decision == "decline" and in_decline_sample(tid, sample_share):
            decision, guard = "review", SAMPLED
        at = datetime.fromtimestamp(float(data.timestamps[i]), UTC)
        row = LoggedRow(
            transaction_id=tid,
            event_time=at,
            scored_at=at,
            decision=decision,
            features=dict(zip(FEATURE_NAMES, data.features[i].tolist(), strict=True)),
            guard=guard,
            card_age_s=float(data.card_ages[i]),
        )
        yield row, {"transaction_id": tid, "decision": decision, "event_time": at.isoformat()}


def logged(
    batch: SimulatedBatch, data: Dataset, model: ServedModel, sample_share: float = 0.0
) -> Logged:
    """The feature log and the labels of `batch` (its features: `data`) as a stack serving
    `model` would have them."""
    pairs = list(_rows(batch, data, model, sample_share))
    truth = {label.transaction_id: label for label in batch.labels}
    outcomes = production_labels([p for _, p in pairs], truth)
    labels = {}
    for label in outcomes.labels:
        at = datetime.fromisoformat(label["labelled_at"]).astimezone(UTC)
        key = f"{at.isoformat(timespec='milliseconds').replace('+00:00', 'Z')}#{_RANK[label['label']]}#{label['source']}"
        labels[label["transaction_id"]] = {
            "transaction_id": label["transaction_id"],
            "label": label["label"],
            "label_key": key,
            "received_at": at.isoformat(),
        }
    counts = {d: 0 for d in ("approve", "review", "decline")}
    for row, _ in pairs:
        counts[row.decision] += 1
    return Logged([r for r, _ in pairs], labels, counts)
