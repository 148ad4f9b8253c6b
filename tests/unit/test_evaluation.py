"""Weighted evaluation: a retrain's rows carry inverse-propensity weights (a reviewed decline
stands for 1 / DeclineSampleShare declines), and the card's thresholds and shares must be the
population's. A row of weight k must count as k copies of it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from training.evaluation import choose_thresholds, evaluate

THRESHOLDS = {"review": 0.3, "decline": 0.7}


def _rows(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = rng.beta(0.5, 3.0, 6_000)
    y = (rng.random(scores.size) < scores).astype(np.int64)
    weights = np.where(scores >= 0.5, 5.0, 1.0)  # the high scores were sampled one in five
    patterns = np.where(y == 1, np.where(rng.random(y.size) < 0.5, "a", "b"), "legit")
    return y, scores, weights, patterns


@pytest.mark.parametrize("seed", [1, 2])
def test_a_weighted_row_counts_as_its_copies(seed: int) -> None:
    y, scores, weights, patterns = _rows(seed)
    copies = weights.astype(np.int64)

    weighted: dict[str, Any] = evaluate(y, scores, patterns, THRESHOLDS, weights)
    expanded: dict[str, Any] = evaluate(
        np.repeat(y, copies), np.repeat(scores, copies), np.repeat(patterns, copies), THRESHOLDS
    )

    for key in ("pr_auc", "roc_auc", "recall_at_1pct_fpr"):
        assert weighted[key] == pytest.approx(expanded[key], abs=1e-9), key
    for decision in THRESHOLDS:
        got, want = weighted["at_thresholds"][decision], expanded["at_thresholds"][decision]
        assert got == pytest.approx(want), decision
    by_pattern, want_by_pattern = weighted["recall_by_pattern"], expanded["recall_by_pattern"]
    assert by_pattern.keys() == want_by_pattern.keys()
    for name in by_pattern:
        assert by_pattern[name] == pytest.approx(want_by_pattern[name]), name
    assert choose_thresholds(y, scores, weights) == choose_thresholds(
        np.repeat(y, copies), np.repeat(scores, copies)
    )
    # and the weights matter: unweighted, the sampled high scores are under-counted
    plain: dict[str, Any] = evaluate(y, scores, patterns, THRESHOLDS)
    assert (
        plain["at_thresholds"]["decline"]["flagged_share"]
        < (weighted["at_thresholds"]["decline"]["flagged_share"])
    )
