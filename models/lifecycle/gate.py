"""The retraining gate: a candidate replaces nothing unless a paired comparison on the same
labelled transactions says it is better than the champion, beyond noise.

"At least the champion's figure" promotes about half the time when the two models are equal:
each figure is a sample. Here both models score the same later, labelled slice, and a paired
bootstrap resamples its transactions (the same draw for both models, so what they share cancels)
to give 95 % intervals of the differences, and the one-sided 95 % lower bounds the rule tests:

- **PR-AUC** (average precision), candidate minus champion: its one-sided lower bound must be
  above -`pr_auc_margin`. At 0 (the command's default) the candidate must be better, not only
  not worse. The in-stack runner answers a drift with a margin (`RetrainPrAucMargin`, 0.02): a
  candidate as good as the champion, trained on the changed traffic, is worth scoring in shadow,
  because its baseline describes that traffic; the promotion check then judges it on live
  labels (functions/streamscore/promotion/).
- **Recall at the champion's decline rate**, candidate minus champion: the champion at its
  decline threshold, the candidate at the threshold that declines the same (weighted) share of
  the slice; its lower bound must be above -`recall_tolerance`: with the same decline budget
  it may not catch noticeably fewer frauds. Each model's own card threshold is chosen on a
  small validation slice and differs in decline rate; comparing recall at two different
  decline rates would reward whichever declines more. The report also gives the candidate's
  recall at its own threshold.
- At least `min_frauds` frauds in the slice, or no verdict.

Label bias. The champion decided which transactions production ever labels: its declines never
settle, so they carry no chargeback. Counting them as legitimate would charge every fraud the
candidate flags among them as a false alarm, which favours the champion; leaving them out judges
both only where the champion did not decline. The gate takes per-transaction weights: the
declines reviewed instead (the decline sample, `DeclineSampleShare`) stand, weighted by one over
the share, for all the champion's declines (inverse-propensity weighting); without a sample the
caller leaves declines out and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
BOOTSTRAP_DRAWS = 2000
MIN_FRAUDS = 50
RECALL_TOLERANCE = 0.02


@dataclass(frozen=True)
class GatePolicy:
    min_frauds: int = MIN_FRAUDS
    recall_tolerance: float = RECALL_TOLERANCE
    pr_auc_margin: float = 0.0  # 0: better beyond noise; > 0: not worse than this
    draws: int = BOOTSTRAP_DRAWS
    confidence: float = CONFIDENCE


@dataclass(frozen=True)
class Slice:
    """The labelled transactions both models are judged on: 0/1 labels, each model's scores,
    and each transaction's weight (1, or one over the chance it was labelled)."""

    labels: np.ndarray
    champion: np.ndarray
    candidate: np.ndarray
    weights: np.ndarray

    @classmethod
    def of(
        cls,
        labels: np.ndarray,
        champion: np.ndarray,
        candidate: np.ndarray,
        weights: np.ndarray | None = None,
    ) -> Slice:
        y = np.asarray(labels, dtype=np.int64)
        w = np.ones(y.size) if weights is None else np.asarray(weights, dtype=np.float64)
        a, b = np.asarray(champion, dtype=np.float64), np.asarray(candidate, dtype=np.float64)
        if not y.size == a.size == b.size == w.size:
            raise ValueError("labels, scores and weights must be of one length")
        if np.any(w <= 0) or not np.all(np.isin(y, (0, 1))):
            raise ValueError("weights must be positive and labels 0 or 1")
        return cls(y, a, b, w)


def average_precision(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> float:
    """Weighted average precision: the precision at each fraud's rank, averaged by weight, with
    tied scores flagged together (scikit-learn's average_precision_score with sample_weight)."""
    order = np.argsort(-scores, kind="stable")
    y, s, w = labels[order], scores[order], weights[order]
    true_weight = np.cumsum(w * y)
    all_weight = np.cumsum(w)
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tp, flagged = true_weight[last_of_tie], all_weight[last_of_tie]
    total = tp[-1] if tp.size else 0.0
    if total <= 0:
        return float("nan")
    recall_steps = np.diff(np.r_[0.0, tp]) / total
    return float(np.sum(recall_steps * tp / flagged))


def matched_threshold(
    scores: np.ndarray, weights: np.ndarray, reference: np.ndarray, threshold: float
) -> float:
    """The threshold on `scores` that flags the (weighted) share `reference` flags at `threshold`."""
    share = float(np.sum(weights * (reference >= threshold)) / np.sum(weights))
    if share <= 0:
        return float("inf")
    order = np.argsort(-scores, kind="stable")
    cumulative = np.cumsum(weights[order]) / np.sum(weights)
    return float(scores[order][min(int(np.searchsorted(cumulative, share)), scores.size - 1)])


def recall_at(
    labels: np.ndarray, scores: np.ndarray, weights: np.ndarray, threshold: float
) -> float:
    frauds = float(np.sum(weights * labels))
    caught = float(np.sum(weights * labels * (scores >= threshold)))
    return caught / frauds if frauds > 0 else float("nan")


def _interval(values: np.ndarray, confidence: float) -> tuple[list[float], float]:
    """The two-sided interval at `confidence` (what the report shows) and the one-sided lower
    bound at `confidence` (what the rule tests: better beyond noise)."""
    tail = (1 - confidence) / 2
    interval = [float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))]
    return interval, float(np.quantile(values, 1 - confidence))


def _draws(
    data: Slice, thresholds: tuple[float, float], policy: GatePolicy, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap differences, candidate minus champion: PR-AUC, and recall at decline."""
    champion_t, candidate_t = thresholds
    rng = np.random.default_rng(seed)
    pr_auc = np.empty(policy.draws)
    recall = np.empty(policy.draws)
    for draw in range(policy.draws):
        pick = rng.integers(0, data.labels.size, data.labels.size)
        y, w = data.labels[pick], data.weights[pick]
        a, b = data.champion[pick], data.candidate[pick]
        pr_auc[draw] = average_precision(y, b, w) - average_precision(y, a, w)
        recall[draw] = recall_at(y, b, w, candidate_t) - recall_at(y, a, w, champion_t)
    return pr_auc[~np.isnan(pr_auc)], recall[~np.isnan(recall)]


def judge(
    data: Slice,
    thresholds: tuple[float, float],
    policy: GatePolicy,
    seed: int,
) -> dict[str, object]:
    """The gate's verdict on `data`: "promote", "reject" or "insufficient_labels", with each
    difference's point value and bootstrap interval. `thresholds`: (champion's decline
    threshold, candidate's). Deterministic for a seed."""
    y, w = data.labels, data.weights
    champion_t, own_t = thresholds
    candidate_t = matched_threshold(data.candidate, w, data.champion, champion_t)
    thresholds = (champion_t, candidate_t)
    champion_pr = average_precision(y, data.champion, w)
    candidate_pr = average_precision(y, data.candidate, w)
    champion_recall = recall_at(y, data.champion, w, champion_t)
    candidate_recall = recall_at(y, data.candidate, w, candidate_t)
    frauds = int(y.sum())
    figures: dict[str, object] = {
        "frauds": frauds,
        "transactions": int(y.size),
        "champion": {"pr_auc": champion_pr, "recall_at_decline": champion_recall},
        "candidate": {
            "pr_auc": candidate_pr,
            "recall_at_decline": candidate_recall,
            "matched_threshold": candidate_t,
            "recall_at_own_threshold": recall_at(y, data.candidate, w, own_t),
        },
    }
    if frauds < policy.min_frauds:
        why = f"{frauds} frauds in the slice, fewer than {policy.min_frauds}"
        return figures | {"verdict": "insufficient_labels", "why": why}
    pr_auc, recall = _draws(data, thresholds, policy, seed)
    pr_interval, pr_low = _interval(pr_auc, policy.confidence)
    recall_interval, recall_low = _interval(recall, policy.confidence)
    reasons = []
    if pr_low <= -policy.pr_auc_margin:
        reasons.append(
            f"PR-AUC difference's lower bound {pr_low:+.4f} is not above {-policy.pr_auc_margin:+g}"
        )
    if recall_low <= -policy.recall_tolerance:
        reasons.append(
            f"recall at decline difference's lower bound {recall_low:+.4f} is not "
            f"above -{policy.recall_tolerance:g}"
        )
    return figures | {
        "verdict": "reject" if reasons else "promote",
        "why": "; ".join(reasons)
        or (
            "PR-AUC better beyond noise"
            if policy.pr_auc_margin == 0
            else f"PR-AUC not worse than {-policy.pr_auc_margin:+g} beyond noise"
        )
        + ", recall at decline not worse",
        "pr_auc_difference": {
            "value": candidate_pr - champion_pr,
            "interval": pr_interval,
            "lower_bound": pr_low,
        },
        "recall_at_decline_difference": {
            "value": candidate_recall - champion_recall,
            "interval": recall_interval,
            "lower_bound": recall_low,
        },
        "draws": int(pr_auc.size),
        "confidence": policy.confidence,
        "pr_auc_margin": policy.pr_auc_margin,
        "seed": seed,
    }
