"""The labels production would see of scored transactions: outcomes that depend on the decision.

A fraud team learns the truth only where an outcome comes back, and the decision decides which:

- **approved**: a fraud comes back as a chargeback when the cardholder disputes it, days to
  weeks later; some frauds are never reported. A legitimate approval comes back as nothing at
  all (an implicit negative once it is old enough).
- **reviewed**: an analyst decides within hours, fraud or legit (a review cleared).
- **declined**: never settles, so never charged back: unknown, never legit.

Delays and shares are assumptions, not measurements (no published distribution was found):
the card networks give cardholders 120 days to dispute a fraud (Visa reason code 10.4,
Mastercard 4837); here a chargeback comes 1 + Gamma(2, 7) days after the transaction, cut at 60
(median ~12 days, 95 % within ~34), a share `unreported` of approved frauds (10 % by default)
never comes back, and analysts decide 0.5-48 hours after the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from simulator.simulation import Label

CHARGEBACK_MAX_DAYS = 60.0


@dataclass(frozen=True)
class OutcomeConfig:
    seed: int = 2026
    unreported: float = 0.10  # approved frauds never charged back
    chargeback_shape: float = 2.0  # days after the transaction: 1 + Gamma(shape, scale), cut
    chargeback_scale: float = 7.0
    review_hours: tuple[float, float] = (0.5, 48.0)  # an analyst's outcome, uniform


@dataclass(frozen=True)
class Outcomes:
    """The labels production sees, in labelled_at order, and what stays unseen."""

    labels: list[dict[str, Any]]  # the Label contract's records
    unreported: int  # approved frauds never charged back
    declined_frauds: int  # frauds declined: their truth never comes back
    declined_legit: int  # legitimate transactions declined: the cost nobody labels


def production_labels(
    predictions: Iterable[Mapping[str, Any]],
    truth: Mapping[str, Label],
    config: OutcomeConfig | None = None,
) -> Outcomes:
    """The labels of `predictions` (transaction_id, decision, event_time) that come back, by the
    simulator's `truth`; transactions it does not know are skipped."""
    config = config or OutcomeConfig()
    rng = np.random.default_rng(config.seed)
    labels: list[dict[str, Any]] = []
    unreported = declined_frauds = declined_legit = 0
    for prediction in sorted(predictions, key=lambda p: str(p["transaction_id"])):
        known = truth.get(str(prediction["transaction_id"]))
        if known is None:
            continue
        decision, fraud = prediction["decision"], known.is_fraud
        at = datetime.fromisoformat(str(prediction["event_time"])).astimezone(UTC)
        if decision == "decline":
            declined_frauds += fraud
            declined_legit += not fraud
        elif decision == "review":
            hours = rng.uniform(*config.review_hours)
            labels.append(_label(known, fraud, at + timedelta(hours=hours), "review"))
        elif fraud and rng.random() < config.unreported:
            unreported += 1
        elif fraud:
            days = 1.0 + rng.gamma(config.chargeback_shape, config.chargeback_scale)
            days = min(days, CHARGEBACK_MAX_DAYS)
            labels.append(_label(known, True, at + timedelta(days=days), "chargeback"))
    labels.sort(key=lambda x: (x["labelled_at"], x["transaction_id"]))
    return Outcomes(labels, unreported, declined_frauds, declined_legit)


def _label(known: Label, fraud: bool, at: datetime, source: str) -> dict[str, Any]:
    return {
        "transaction_id": known.transaction_id,
        "label": "fraud" if fraud else "legit",
        "labelled_at": at.isoformat(timespec="milliseconds"),
        "source": source,
    }
