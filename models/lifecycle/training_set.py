"""A point-in-time training set: the features each transaction had when it was scored, joined
with its label as known at the training cut-off, and nothing the cut-off could not have known.

Rows come from the feature log (one per scored transaction, possibly repeated: a consumer that
retried writes a row again; the first scoring counts). Labels come from LabelsTable items: the
label in force, when it was received, and the label it replaced (its key: labels/contract.py
`label_key` carries its value) and when that was received. Known at the cut-off means received
by then: a chargeback dated back to before the cut-off but received after it was not known.
The label as known at the cut-off is the one in force if received by then, else the one it
replaced if that was. An item keeps one replaced label: when neither was received by the
cut-off but one was replaced, an earlier label may have been known and is lost, so the row is
left out rather than taken as unlabelled.

Which rows are kept, and as what (the selective labels of the labels issue):
- scored after the cut-off: left out (the future);
- a label known at the cut-off: that label;
- no label, an approval scored at least `maturity_days` before the cut-off: legitimate (a
  chargeback would have come back by then); a younger approval: left out (immature);
- no label, a review: left out (its outcome is unknown);
- no label, a decline: left out; a decline reviewed instead (the decline sample) has a label
  like any review and stands, weighted by one over the sample's share, for every decline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

FRAUD, LEGIT = "fraud", "legit"
_VALUE = {"1": FRAUD, "0": LEGIT}  # a label key's middle part (labels/contract.py)
SAMPLED = "decline_sample"  # the guard of a decline reviewed instead (scoring/batch.py)


@dataclass(frozen=True)
class LoggedRow:
    """One feature-log row: what scoring committed for a transaction."""

    transaction_id: str
    event_time: datetime
    scored_at: datetime
    decision: str
    features: Mapping[str, float]
    guard: str | None = None  # why its decline was reviewed instead, if it was
    card_age_s: float = float("nan")  # not a feature: the drift baseline's history strata


def _key_time(key: str) -> datetime:
    return datetime.fromisoformat(key.split("#", 1)[0])


UNKNOWN_HISTORY = "unknown_history"


def _received(item: Mapping[str, Any], field_name: str, key: str) -> datetime:
    """When a label was received; an item written before receipt times were kept: its time."""
    value = item.get(field_name)
    return datetime.fromisoformat(str(value)) if value else _key_time(key)


def label_as_known(item: Mapping[str, Any], cutoff: datetime) -> str | None:
    """The label a LabelsTable item says was known at `cutoff` (see the module docstring):
    "fraud", "legit", None (nothing was) or UNKNOWN_HISTORY (a replaced label was lost)."""
    if _received(item, "received_at", str(item["label_key"])) <= cutoff:
        return str(item["label"])
    replaced = item.get("replaces")
    if not replaced:
        return None
    if _received(item, "replaces_received_at", str(replaced)) <= cutoff:
        return _VALUE[str(replaced).split("#")[1]]
    return UNKNOWN_HISTORY


@dataclass
class TrainingSet:
    features: np.ndarray  # [n, len(names)] in `names` order
    labels: np.ndarray  # 1 fraud, 0 legitimate
    weights: np.ndarray
    event_times: np.ndarray  # epoch seconds, for time splits
    card_ages: np.ndarray  # seconds the pipeline had known the card (NaN: not logged)
    names: tuple[str, ...]
    left_out: Counter[str] = field(default_factory=Counter)  # why rows were not kept
    kept_as: Counter[str] = field(default_factory=Counter)  # "labelled", "implicit_negative"


def _first_scored(rows: Iterable[LoggedRow]) -> dict[str, LoggedRow]:
    first: dict[str, LoggedRow] = {}
    for row in rows:
        kept = first.get(row.transaction_id)
        if kept is None or row.scored_at < kept.scored_at:
            first[row.transaction_id] = row
    return first


def _outcome(
    row: LoggedRow, label: str | None, cutoff: datetime, maturity: timedelta
) -> tuple[int, str] | None:
    """(1 fraud / 0 legitimate, how it was known), or None with nothing known."""
    if label is not None:
        return (1 if label == FRAUD else 0), "labelled"
    if row.decision == "approve" and row.scored_at <= cutoff - maturity:
        return 0, "implicit_negative"
    return None


def training_set(
    rows: Iterable[LoggedRow],
    labels: Mapping[str, Mapping[str, Any]],
    cutoff: datetime,
    names: Sequence[str],
    maturity_days: float,
    sample_share: float = 0.0,
) -> TrainingSet:
    """The rows known at `cutoff`, labelled as known then (see the module docstring); `labels`:
    LabelsTable items by transaction id; `sample_share`: DeclineSampleShare while the rows were
    scored (0: no decline stands for the others)."""
    maturity = timedelta(days=maturity_days)
    kept: list[tuple[LoggedRow, int, float]] = []
    left_out: Counter[str] = Counter()
    kept_as: Counter[str] = Counter()
    for row in _first_scored(rows).values():
        if row.scored_at > cutoff:
            left_out["scored_after_cutoff"] += 1
            continue
        item = labels.get(row.transaction_id)
        label = label_as_known(item, cutoff) if item is not None else None
        if label == UNKNOWN_HISTORY:
            left_out[UNKNOWN_HISTORY] += 1
            continue
        outcome = _outcome(row, label, cutoff, maturity)
        if outcome is None:
            left_out[f"unknown_{row.decision}"] += 1
            continue
        weight = 1.0
        if row.guard == SAMPLED and sample_share > 0:
            weight = 1.0 / sample_share
        kept_as[outcome[1]] += 1
        kept.append((row, outcome[0], weight))
    kept.sort(key=lambda k: (k[0].event_time, k[0].transaction_id))
    return TrainingSet(
        features=np.array(
            [[float(r.features.get(n, np.nan)) for n in names] for r, _, _ in kept],
            dtype=np.float64,
        ).reshape(len(kept), len(names)),
        labels=np.array([y for _, y, _ in kept], dtype=np.int64),
        weights=np.array([w for _, _, w in kept], dtype=np.float64),
        event_times=np.array([r.event_time.timestamp() for r, _, _ in kept], dtype=np.float64),
        card_ages=np.array([r.card_age_s for r, _, _ in kept], dtype=np.float64),
        names=tuple(names),
        left_out=left_out,
        kept_as=kept_as,
    )
