"""Model quality from count items: realized from labels, estimated from the scores themselves.

A model version's prediction count items (PRED) and quality count items (QUAL) over a window of
event hours, summed (core/monitoring.py `Counts`), give:

- **Realized**, from the labels production sees (labels/): analysts label every review; a fraud
  that was approved comes back as a chargeback; a legitimate approval never comes back, so once
  its labels have had time to mature (`LabelMaturityDays`) an approval without a label counts
  as legit (an implicit negative); a decline never settles, so its truth never comes back.
  Every realized figure is therefore **among transactions that were not declined**: recall at
  the review threshold is the share of the frauds seen among approvals and reviews that were
  reviewed; precision at review is the share of reviews the analysts found fraudulent; the area
  under the precision-recall curve ranks approvals and reviews by their score bin
  (core/quality.py). Within a bin the order is unknown, so the area is given with bounds: the
  bin's frauds ranked first (the highest possible) and last (the lowest); the figure itself
  takes each bin as tied, as scikit-learn's `average_precision_score` does for tied scores.
  The unbinned area lies within the bounds.
- **Estimated**, from each decision's sum of scores (`qp_<decision>`): a calibrated model
  expects that many frauds among them (NannyML's confidence-based performance estimation does
  the same per row). It needs no labels, so it is there before they mature, but it assumes
  P(fraud | features) is what the model learned: a new fraud pattern the model scores low
  moves the realized recall and not the estimate. The two side by side show that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamscore.core.monitoring import Counts
from streamscore.core.quality import QUALITY_BINS, SCORE_UNITS

DECISIONS = ("approve", "review", "decline")


@dataclass(frozen=True)
class QualityCounts:
    """One version's counts over a window, as the quality figures need them."""

    predictions: dict[str, int]  # per decision
    expected_frauds: dict[str, float]  # per decision: the sum of its scores
    approvals: list[int]  # per quality bin
    fraud_approvals: list[int]  # labelled fraud, per bin (chargebacks)
    legit_approvals: list[int]  # labelled legit, per bin (rare: a dispute reversed)
    fraud_reviews: list[int]
    legit_reviews: list[int]
    labelled: dict[str, int]  # "fd_<decision>", "ld_<decision>"

    @classmethod
    def of(cls, predictions: Counts, labels: Counts) -> QualityCounts:
        """From a version's summed PRED counts and summed QUAL counts."""

        def bins(prefix: str, counts: Counts) -> list[int]:
            return [int(counts.quality.get(f"{prefix}{b}", 0)) for b in range(QUALITY_BINS)]

        return cls(
            predictions={d: int(predictions.decisions.get(d, 0)) for d in DECISIONS},
            expected_frauds={
                d: predictions.quality.get(f"p_{d}", 0) / SCORE_UNITS for d in DECISIONS
            },
            approvals=bins("a", predictions),
            fraud_approvals=bins("fa", labels),
            legit_approvals=bins("la", labels),
            fraud_reviews=bins("fr", labels),
            legit_reviews=bins("lr", labels),
            labelled={
                f"{mark}d_{d}": int(labels.quality.get(f"{mark}d_{d}", 0))
                for mark in "fl"
                for d in DECISIONS
            },
        )


@dataclass(frozen=True)
class AreaUnderCurve:
    """Average precision over bins: tied within each bin, and its bounds."""

    value: float | None
    low: float | None
    high: float | None


def binned_average_precision(frauds: list[int], legit: list[int]) -> AreaUnderCurve:
    """Average precision of transactions ranked by bin, highest bin first: the bins' frauds and
    legitimate transactions per bin, in bin order (lowest score first)."""
    total = sum(frauds)
    if total == 0:
        return AreaUnderCurve(None, None, None)
    tied = low = high = 0.0
    found = seen = 0
    for f, n in zip(reversed(frauds), reversed(legit), strict=True):
        if f:
            # every fraud of the bin at the bin's precision (ties), at the top, at the bottom
            tied += f * (found + f) / (seen + f + n)
            high += sum((found + k) / (seen + k) for k in range(1, f + 1))
            low += sum((found + k) / (seen + n + k) for k in range(1, f + 1))
        found += f
        seen += f + n
    return AreaUnderCurve(tied / total, low / total, high / total)


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def realized(counts: QualityCounts) -> dict[str, Any]:
    """The realized figures of a window whose labels have matured (see the module docstring)."""
    implicit = [
        max(0, a - f - legit)
        for a, f, legit in zip(
            counts.approvals, counts.fraud_approvals, counts.legit_approvals, strict=True
        )
    ]
    frauds = [a + r for a, r in zip(counts.fraud_approvals, counts.fraud_reviews, strict=True)]
    legit = [
        a + r + i
        for a, r, i in zip(counts.legit_approvals, counts.legit_reviews, implicit, strict=True)
    ]
    caught, missed = sum(counts.fraud_reviews), sum(counts.fraud_approvals)
    cleared = sum(counts.legit_reviews)
    area = binned_average_precision(frauds, legit)
    return {
        "frauds_seen": caught + missed,
        "chargebacks": missed,
        "reviews_labelled": caught + cleared,
        "implicit_negatives": sum(implicit),
        "declines_labelled": counts.labelled["fd_decline"] + counts.labelled["ld_decline"],
        "recall_at_review": _share(caught, caught + missed),
        "precision_at_review": _share(caught, caught + cleared),
        "pr_auc": area.value,
        "pr_auc_low": area.low,
        "pr_auc_high": area.high,
    }


def estimated(counts: QualityCounts) -> dict[str, Any]:
    """What a calibrated model expects of the same predictions: no labels needed."""
    e, n = counts.expected_frauds, counts.predictions
    return {
        "expected_frauds": {d: round(e[d], 3) for d in DECISIONS},
        "recall_at_review": _share(e["review"], e["review"] + e["approve"]),
        "precision_at_review": _share(e["review"], n["review"]),
        "recall_at_decline": _share(e["decline"], sum(e.values())),
        "precision_at_decline": _share(e["decline"], n["decline"]),
    }
