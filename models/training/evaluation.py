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


def recall_at_fpr(
    y: np.ndarray, scores: np.ndarray, max_fpr: float, weights: np.ndarray | None = None
) -> float:
    """The best recall reachable with a false-positive rate <= max_fpr."""
    fpr, tpr, _ = roc_curve(y, scores, sample_weight=weights)
    return float(tpr[fpr <= max_fpr].max())


def operating_point(
    y: np.ndarray, scores: np.ndarray, threshold: float, weights: np.ndarray | None = None
) -> dict[str, float]:
    """Precision, recall, false-positive rate and share flagged at `threshold`; with `weights`
    (a retrain's inverse-propensity weights: each reviewed decline stands for one over the
    decline sample share) as shares of the population the rows stand for."""
    w = np.ones(y.size) if weights is None else np.asarray(weights, dtype=np.float64)
    flagged = scores >= threshold
    fraud = y == 1
    true_pos = float(w[flagged & fraud].sum())
    return {
        "threshold": threshold,
        "precision": true_pos / max(1.0, float(w[flagged].sum())),
        "recall": true_pos / max(1.0, float(w[fraud].sum())),
        "false_positive_rate": float(w[flagged & ~fraud].sum()) / max(1.0, float(w[~fraud].sum())),
        "flagged_share": float(w[flagged].sum()) / max(1e-12, float(w.sum())),
    }


def choose_thresholds(
    y: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None
) -> dict[str, float]:
    """Review and decline thresholds by THRESHOLD_RULE (rates and precision weighted by
    `weights` when given; the minimum flagged is a count of rows)."""
    fpr, _, roc_thresholds = roc_curve(y, scores, drop_intermediate=False, sample_weight=weights)
    review = _round_up(float(roc_thresholds[np.flatnonzero(fpr <= REVIEW_MAX_FPR).max()]))

    precision, _, pr_thresholds = precision_recall_curve(
        y, scores, drop_intermediate=False, sample_weight=weights
    )
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
    y: np.ndarray,
    scores: np.ndarray,
    patterns: np.ndarray,
    thresholds: dict[str, float],
    weights: np.ndarray | None = None,
) -> dict[str, object]:
    """Threshold-free metrics, the two operating points, and recall per fraud pattern; each
    weighted by `weights` when given (`n_transactions` and `n_fraud` stay counts of rows)."""
    w = np.ones(y.size) if weights is None else np.asarray(weights, dtype=np.float64)
    by_pattern = {
        name: {
            decision: float(
                np.average(scores[patterns == name] >= threshold, weights=w[patterns == name])
            )
            for decision, threshold in thresholds.items()
        }
        for name in sorted(set(patterns[y == 1].tolist()))
    }
    return {
        "n_transactions": int(y.size),
        "n_fraud": int(y.sum()),
        "pr_auc": float(average_precision_score(y, scores, sample_weight=weights)),
        "roc_auc": float(roc_auc_score(y, scores, sample_weight=weights)),
        "recall_at_1pct_fpr": recall_at_fpr(y, scores, 0.01, weights),
        "at_thresholds": {
            decision: operating_point(y, scores, threshold, weights)
            for decision, threshold in thresholds.items()
        },
        "recall_by_pattern": by_pattern,
    }
