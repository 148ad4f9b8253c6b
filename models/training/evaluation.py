"""Ranking metrics, operating points and the rule that turns validation scores into thresholds."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

REVIEW_MAX_FPR = 0.01  # review: flag at most 1% of legitimate transactions
DECLINE_MIN_PRECISION = 0.9  # decline: at least 9 in 10 declined transactions are fraud
DECLINE_MIN_FLAGGED = 20  # ... measured on at least this many flagged transactions
DECLINE_FALLBACK_FPR = 0.001  # if that precision is out of reach: flag at most 0.1% of legit
THRESHOLD_DECIMALS = 6
THRESHOLD_RULE = (
    "Chosen on the validation slice (between training and test in time). review: the lowest "
    f"score threshold whose false-positive rate is <= {REVIEW_MAX_FPR:.0%}. decline: the lowest "
    f"threshold with precision >= {DECLINE_MIN_PRECISION:.0%} over at least "
    f"{DECLINE_MIN_FLAGGED} flagged transactions (fallback: false-positive rate <= "
    f"{DECLINE_FALLBACK_FPR:.1%}), and never below review. Both are rounded up to "
    f"{THRESHOLD_DECIMALS} decimals; a transaction is flagged when score >= threshold."
)


def _round_up(value: float) -> float:
    if not math.isfinite(value):
        return 1.0
    scale = 10**THRESHOLD_DECIMALS
    return min(1.0, math.ceil(value * scale - 1e-9) / scale)


def recall_at_fpr(y: np.ndarray, scores: np.ndarray, max_fpr: float) -> float:
    """The best recall reachable with a false-positive rate <= max_fpr."""
    fpr, tpr, _ = roc_curve(y, scores)
    return float(tpr[fpr <= max_fpr].max())


def operating_point(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    flagged = scores >= threshold
    positives = max(1, int(y.sum()))
    negatives = max(1, int((y == 0).sum()))
    true_pos = int((flagged & (y == 1)).sum())
    return {
        "threshold": threshold,
        "precision": true_pos / max(1, int(flagged.sum())),
        "recall": true_pos / positives,
        "false_positive_rate": int((flagged & (y == 0)).sum()) / negatives,
        "flagged_share": float(flagged.mean()),
    }


def choose_thresholds(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Review and decline thresholds by THRESHOLD_RULE."""
    fpr, _, roc_thresholds = roc_curve(y, scores, drop_intermediate=False)
    review = _round_up(float(roc_thresholds[np.flatnonzero(fpr <= REVIEW_MAX_FPR).max()]))

    precision, _, pr_thresholds = precision_recall_curve(y, scores, drop_intermediate=False)
    flagged = scores.size - np.searchsorted(np.sort(scores), pr_thresholds, side="left")
    good = np.flatnonzero(
        (precision[:-1] >= DECLINE_MIN_PRECISION) & (flagged >= DECLINE_MIN_FLAGGED)
    )
    if good.size:
        decline = float(pr_thresholds[good.min()])
    else:
        decline = float(roc_thresholds[np.flatnonzero(fpr <= DECLINE_FALLBACK_FPR).max()])
    return {"review": review, "decline": max(review, _round_up(decline))}


def evaluate(
    y: np.ndarray, scores: np.ndarray, patterns: np.ndarray, thresholds: dict[str, float]
) -> dict[str, object]:
    """Threshold-free metrics, the two operating points, and recall per fraud pattern."""
    by_pattern = {
        name: {
            decision: float((scores[patterns == name] >= threshold).mean())
            for decision, threshold in thresholds.items()
        }
        for name in sorted(set(patterns[y == 1].tolist()))
    }
    return {
        "n_transactions": int(y.size),
        "n_fraud": int(y.sum()),
        "pr_auc": float(average_precision_score(y, scores)),
        "roc_auc": float(roc_auc_score(y, scores)),
        "recall_at_1pct_fpr": recall_at_fpr(y, scores, 0.01),
        "at_thresholds": {
            decision: operating_point(y, scores, threshold)
            for decision, threshold in thresholds.items()
        },
        "recall_by_pattern": by_pattern,
    }
