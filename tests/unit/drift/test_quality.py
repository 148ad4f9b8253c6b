"""Quality figures from count items: the binned average precision against scikit-learn's, its
bounds around the unbinned figure, realized figures with implicit negatives, the estimate."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest
from sklearn.metrics import average_precision_score

from streamscore.core.monitoring import Counts, prediction_counts
from streamscore.core.quality import (
    QUALITY_BINS,
    label_attributes,
    paired_label_attributes,
    quality_bin,
)
from streamscore.drift.quality import (
    QualityCounts,
    binned_average_precision,
    estimated,
    paired,
    realized,
)


def _binned(scores: np.ndarray, fraud: np.ndarray) -> tuple[list[int], list[int]]:
    bins = np.array([quality_bin(float(s)) for s in scores])
    frauds = np.bincount(bins[fraud], minlength=QUALITY_BINS).tolist()
    legit = np.bincount(bins[~fraud], minlength=QUALITY_BINS).tolist()
    return frauds, legit


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(2, 400), rate=st.floats(0.01, 0.5))
def test_the_binned_figure_is_scikit_learns_on_tied_bins_and_the_bounds_hold_the_unbinned(
    seed: int, n: int, rate: float
) -> None:
    rng = np.random.default_rng(seed)
    fraud = rng.random(n) < rate
    if not fraud.any():
        fraud[0] = True
    # scores that separate the classes somewhat, across the whole log-odds range
    logits = rng.normal(np.where(fraud, 1.0, -4.0), 2.5)
    scores = 1 / (1 + np.exp(-logits))

    area = binned_average_precision(*_binned(scores, fraud))

    bins = np.array([quality_bin(float(s)) for s in scores])
    assert area.tied == pytest.approx(average_precision_score(fraud, bins), abs=1e-12)
    unbinned = average_precision_score(fraud, scores)
    assert area.low is not None and area.high is not None and area.value is not None
    assert area.low - 1e-12 <= unbinned <= area.high + 1e-12
    assert abs(area.value - unbinned) <= (area.high - area.low) / 2 + 1e-12


def test_no_fraud_gives_no_area() -> None:
    assert binned_average_precision([0] * 4, [3, 1, 0, 2]).value is None


def _counts(rows: list[tuple[str, float, str | None]]) -> QualityCounts:
    """(decision, score, label or None) per prediction, through the counting functions."""
    predicted, labelled = Counts(), Counts()
    for decision, score, label in rows:
        predicted.add(prediction_counts(decision, [], score=score))
        if label is not None:
            labelled.quality.update(label_attributes(label == "fraud", decision, score))
    return QualityCounts.of(predicted, labelled)


def test_realized_counts_unlabelled_approvals_as_legit_and_leaves_declines_out() -> None:
    rows = [
        ("approve", 0.001, None),  # implicit negatives
        ("approve", 0.001, None),
        ("approve", 0.002, "fraud"),  # a chargeback: a fraud the model let through
        ("review", 0.1, "fraud"),
        ("review", 0.1, "legit"),  # a review cleared
        ("review", 0.2, "fraud"),
        ("decline", 0.9, None),  # never settles
    ]

    figures = realized(_counts(rows))

    assert figures["frauds_seen"] == 3 and figures["chargebacks"] == 1
    assert figures["implicit_negatives"] == 2
    assert figures["recall_at_review"] == pytest.approx(2 / 3)
    assert figures["precision_at_review"] == pytest.approx(2 / 3)
    assert figures["declines_labelled"] == 0
    # the frauds of the two review bins rank above the chargeback's bin
    scores = np.array([0.001, 0.001, 0.002, 0.1, 0.1, 0.2])
    fraud = np.array([False, False, True, True, False, True])
    bins = np.array([quality_bin(float(s)) for s in scores])
    assert figures["pr_auc_tied"] == pytest.approx(average_precision_score(fraud, bins))
    assert figures["pr_auc_low"] <= figures["pr_auc"] <= figures["pr_auc_high"]


def test_the_estimate_is_the_frauds_the_scores_expect() -> None:
    rows = (
        [("approve", 0.01, None)] * 100
        + [("review", 0.25, None)] * 8
        + [("decline", 0.8, None)] * 5
    )

    figures = estimated(_counts(rows))

    assert figures["expected_frauds"] == {"approve": 1.0, "review": 2.0, "decline": 4.0}
    assert figures["recall_at_review"] == pytest.approx(2 / 3)
    assert figures["precision_at_review"] == pytest.approx(0.25)
    assert figures["recall_at_decline"] == pytest.approx(4 / 7)
    assert figures["precision_at_decline"] == pytest.approx(0.8)


def test_a_calibrated_model_s_estimate_meets_the_realized_figure() -> None:
    # labels drawn from the scores themselves: the calibration the estimate assumes
    rng = np.random.default_rng(5)
    scores = 1 / (1 + np.exp(-rng.normal(-4.5, 1.6, 60_000)))
    fraud = rng.random(scores.size) < scores
    rows = []
    for s, f in zip(scores.tolist(), fraud.tolist(), strict=True):
        decision = "decline" if s >= 0.5 else "review" if s >= 0.05 else "approve"
        label = (
            None
            if decision == "decline"
            else ("fraud" if f else None if decision == "approve" else "legit")
        )
        rows.append((decision, s, label))
    counts = _counts(rows)

    real, expect = realized(counts), estimated(counts)

    assert real["recall_at_review"] == pytest.approx(expect["recall_at_review"], abs=0.03)
    assert real["precision_at_review"] == pytest.approx(expect["precision_at_review"], abs=0.03)
    assert Counter(f for f in fraud.tolist())[True] > 500


def _decision(score: float) -> str:
    return "decline" if score >= 0.5 else "review" if score >= 0.05 else "approve"


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 300))
def test_champion_and_challenger_are_judged_on_the_same_labelled_transactions(
    seed: int, n: int
) -> None:
    rng = np.random.default_rng(seed)
    fraud = rng.random(n) < 0.3
    champion = 1 / (1 + np.exp(-rng.normal(np.where(fraud, 0.5, -3.0), 2.0)))
    challenger = 1 / (1 + np.exp(-rng.normal(np.where(fraud, 1.5, -3.0), 2.0)))
    counts = Counts()
    for f, a, b in zip(fraud, champion, challenger, strict=True):
        counts.quality.update(
            paired_label_attributes(bool(f), (_decision(a), float(a)), (_decision(b), float(b)))
        )

    figures = paired(counts)

    for side, scores in (("champion", champion), ("challenger", challenger)):
        mine = figures[side]
        assert mine["frauds"] == fraud.sum() and mine["legit"] == (~fraud).sum()
        for threshold, at in (("review", 0.05), ("decline", 0.5)):
            flagged = scores >= at
            want_recall = (flagged & fraud).sum() / fraud.sum() if fraud.any() else None
            want_precision = (flagged & fraud).sum() / flagged.sum() if flagged.any() else None
            assert mine[f"recall_at_{threshold}"] == pytest.approx(want_recall)
            assert mine[f"precision_at_{threshold}"] == pytest.approx(want_precision)
        if fraud.any() and (~fraud).any():
            unbinned = average_precision_score(fraud, scores)
            assert mine["pr_auc_low"] - 1e-12 <= unbinned <= mine["pr_auc_high"] + 1e-12
    for threshold, at in (("review", 0.05), ("decline", 0.5)):
        only_challenger = int((fraud & (challenger >= at) & (champion < at)).sum())
        only_champion = int((fraud & (champion >= at) & (challenger < at)).sum())
        discordant = figures["discordant_frauds"][threshold]
        assert discordant["frauds_only_challenger_flags"] == only_challenger
        assert discordant["frauds_only_champion_flags"] == only_champion
        if only_challenger + only_champion:
            want = binomtest(only_challenger, only_challenger + only_champion).pvalue
            assert discordant["mcnemar_p"] == pytest.approx(want, rel=1e-9)


def _with_sample(declines: list[tuple[float, str | None]], sampled: set[int]) -> QualityCounts:
    """Declines (score, label when analysts saw it); those at `sampled` were reviewed instead,
    as scoring and labels count them; plus 40 reviews (20 frauds) and 500 quiet approvals."""
    predicted, labelled = Counts(), Counts()
    for n, (score, label) in enumerate(declines):
        reviewed = n in sampled
        decision = "review" if reviewed else "decline"
        predicted.add(prediction_counts(decision, [], score=score, reviewed_decline=reviewed))
        if reviewed and label is not None:
            labelled.quality.update(label_attributes(label == "fraud", decision, score, True))
    for n in range(40):
        predicted.add(prediction_counts("review", [], score=0.2))
        labelled.quality.update(label_attributes(n < 20, "review", 0.2))
    for _ in range(500):
        predicted.add(prediction_counts("approve", [], score=0.001))
    return QualityCounts.of(predicted, labelled)


def test_reviewed_declines_measure_the_declines_precision_instead_of_their_scores() -> None:
    # 200 declines scored 0.9, of which 40 were reviewed instead: analysts found 20 fraudulent
    declines = [(0.9, "fraud" if n < 20 else "legit") for n in range(200)]

    counts = _with_sample(declines, set(range(40)))
    figures = realized(counts)

    assert counts.predictions == {"approve": 500, "review": 40, "decline": 200}
    sample = figures["decline_sample"]
    assert (sample["reviewed"], sample["labelled"], sample["frauds"]) == (40, 40, 20)
    assert sample["precision_at_decline"] == 0.5
    low, high = sample["precision_at_decline_95"]
    assert low < 0.5 < high
    # 200 declines at precision 0.5: 100 frauds declined; 20 caught at review, none missed
    assert figures["declined_frauds_from"] == "sample"
    assert figures["recall_at_decline"] == pytest.approx(100 / 120)
    # the reviewed declines are not reviews: recall and precision at review are the 40 reviews'
    assert figures["precision_at_review"] == 0.5 and figures["recall_at_review"] == 1.0
    assert estimated(counts)["precision_at_decline"] == pytest.approx(0.9)


def test_too_few_reviewed_declines_leave_the_estimate_from_scores() -> None:
    declines = [(0.9, "legit")] * 200

    figures = realized(_with_sample(declines, set(range(10))))

    assert figures["declined_frauds_from"] == "scores"
    assert figures["recall_at_decline"] == pytest.approx(180 / 200)  # 0.9 x 200 expected
    assert figures["decline_sample"]["labelled"] == 10


def test_an_early_window_takes_the_declines_frauds_from_their_scores_even_with_a_sample() -> None:
    # the early figure must only fall as labels come back: a sample's precision could rise
    counts = _with_sample(
        [(0.9, "fraud" if n < 20 else "legit") for n in range(200)], set(range(40))
    )

    early, mature = realized(counts, mature=False), realized(counts)

    assert early["declined_frauds_from"] == "scores" and mature["declined_frauds_from"] == "sample"
    assert early["recall_at_decline"] == pytest.approx(180 / 200)
