"""The retraining gate (models/lifecycle/gate.py): a paired bootstrap on the same labelled
transactions rejects a worse candidate, promotes an equal one only as often as its confidence
allows, promotes a clearly better one, and gives no verdict on too few frauds."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from lifecycle.gate import GatePolicy, Slice, average_precision, judge, recall_at

POLICY = GatePolicy(min_frauds=50, draws=400)


def _slice(seed: int, champion_noise: float, candidate_noise: float, n: int = 6000) -> Slice:
    """Frauds at 3 %; each model sees the truth through its own noise (log-odds)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.03).astype(np.int64)
    signal = np.where(y == 1, 2.0, -2.0)
    champion = 1 / (1 + np.exp(-(signal + rng.normal(0, champion_noise, n))))
    candidate = 1 / (1 + np.exp(-(signal + rng.normal(0, candidate_noise, n))))
    return Slice.of(y, champion, candidate)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_weighted_average_precision_is_scikit_learns(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(500) < 0.1).astype(np.int64)
    scores = np.round(rng.random(500) + 0.3 * y, 2)  # rounded: many ties
    weights = rng.choice([1.0, 5.0], 500)

    got = average_precision(y, scores, weights)

    assert got == pytest.approx(average_precision_score(y, scores, sample_weight=weights))


def test_a_worse_candidate_is_rejected() -> None:
    verdict = judge(_slice(7, champion_noise=1.0, candidate_noise=2.5), (0.5, 0.5), POLICY, 7)

    assert verdict["verdict"] == "reject"
    assert verdict["pr_auc_difference"]["interval"][1] < 0  # type: ignore[index]


def test_a_clearly_better_candidate_is_promoted() -> None:
    verdict = judge(_slice(8, champion_noise=2.5, candidate_noise=1.0), (0.5, 0.5), POLICY, 8)

    assert verdict["verdict"] == "promote", verdict["why"]
    assert verdict["pr_auc_difference"]["lower_bound"] > 0  # type: ignore[index]


def test_an_equal_candidate_is_rarely_promoted() -> None:
    # two models of the same quality: "at least the champion's" would promote about half
    promoted = [
        judge(_slice(seed, 1.8, 1.8), (0.5, 0.5), POLICY, seed)["verdict"] == "promote"
        for seed in range(30)
    ]
    naive = [
        average_precision(s.labels, s.candidate, s.weights)
        >= average_precision(s.labels, s.champion, s.weights)
        for s in (_slice(seed, 1.8, 1.8) for seed in range(30))
    ]

    assert sum(promoted) <= 4  # ~5 % expected at 95 % confidence
    assert 8 <= sum(naive) <= 22  # about half, as the module docstring says


def test_a_margin_passes_equal_candidates_when_the_evidence_allows_and_no_worse_one() -> None:
    # ~600 frauds a slice: wide enough for a 0.02 margin to be shown most of the time
    margin = GatePolicy(min_frauds=50, draws=200, pr_auc_margin=0.02)
    strict = GatePolicy(min_frauds=50, draws=200)
    slices = [(seed, _slice(seed, 1.0, 1.0, n=20_000)) for seed in range(6)]
    with_margin = [judge(d, (0.5, 0.5), margin, s)["verdict"] for s, d in slices]
    without = [judge(d, (0.5, 0.5), strict, s)["verdict"] for s, d in slices]
    worse = judge(_slice(7, champion_noise=1.0, candidate_noise=2.5), (0.5, 0.5), margin, 7)

    assert with_margin.count("promote") >= 3  # 5 of 6 when written
    assert without.count("promote") <= 1  # 0 of 6
    assert worse["verdict"] == "reject"
    assert "is not above -0.02" in worse["why"]


def test_too_few_frauds_give_no_verdict_and_a_seed_gives_one_answer() -> None:
    small = _slice(3, 1.0, 1.0, n=800)  # ~24 frauds

    assert judge(small, (0.5, 0.5), POLICY, 3)["verdict"] == "insufficient_labels"
    data = _slice(4, 1.5, 1.4)
    assert judge(data, (0.5, 0.5), POLICY, 4) == judge(data, (0.5, 0.5), POLICY, 4)


def test_sampled_declines_weighted_stand_for_every_decline() -> None:
    # the champion declined every score >= 0.5; 10 % of those were reviewed (labelled); weighted
    # by 10, they give the recall at decline the whole slice would
    data = _slice(5, 1.0, 1.0, n=20_000)
    declined = data.champion >= 0.5
    rng = np.random.default_rng(105)  # not _slice's stream: the sample must not follow the labels
    sampled = declined & (rng.random(data.labels.size) < 0.1)
    keep = ~declined | sampled
    weights = np.where(sampled, 10.0, 1.0)[keep]

    whole = recall_at(data.labels, data.champion, data.weights, 0.5)
    weighted = recall_at(data.labels[keep], data.champion[keep], weights, 0.5)
    unweighted = recall_at(data.labels[keep], data.champion[keep], np.ones(keep.sum()), 0.5)

    assert weighted == pytest.approx(whole, abs=0.04)
    assert unweighted < whole - 0.2  # without the weights the declines nearly vanish
