"""Reason codes: the features that pushed a transaction's score up most, from exact TreeSHAP.

A reason is a feature's contribution to the model's margin (the log-odds for a logistic
model) for one transaction, against the expected margin (scoring/treeshap.py): positive
contributions raised the risk. The top k positive ones, largest first, go on the prediction
and the HighRiskTransaction event with the feature's value and the model card's sentence
describing it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from streamscore.core.artifacts import ModelCard
from streamscore.scoring.onnx_trees import LOGISTIC, Trees, read_trees
from streamscore.scoring.treeshap import (
    INTERVENTIONAL,
    PATH_DEPENDENT,
    TreeExplainer,
    has_cover,
)

ADDITIVITY_TOLERANCE = 1e-6  # contributions + expected value against the margin, per row
CHECK_ROWS = 20  # test vectors whose contributions are checked to add up when a model loads
DIGITS = 6  # contributions and values are stored rounded to this many decimals


class Reasoner:
    """Top-k reasons per row of a model's feature matrix."""

    def __init__(self, explainer: TreeExplainer, card: ModelCard):
        self.explainer = explainer
        self.names = card.feature_names
        self.phrases = [card.descriptions.get(name, name) for name in card.feature_names]

    @property
    def method(self) -> str:
        return self.explainer.method

    def contributions(self, matrix: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return self.explainer.shap_values(matrix)

    def top(self, matrix: npt.NDArray[np.float32], k: int) -> list[list[dict[str, Any]]]:
        """Each row's k largest positive contributions, largest first (fewer when fewer are
        positive): feature, value, contribution (log-odds) and phrase."""
        if k <= 0 or len(matrix) == 0:
            return [[] for _ in range(len(matrix))]
        contributions = self.contributions(matrix)
        if not np.isfinite(contributions).all():
            raise ValueError("non-finite contributions")  # the batch goes without reasons
        order = np.argsort(-contributions, axis=1, kind="stable")[:, :k]
        result = []
        for row, picks in enumerate(order.tolist()):
            result.append(
                [
                    {
                        "feature": self.names[j],
                        "value": round(float(matrix[row, j]), DIGITS),
                        "contribution": round(float(contributions[row, j]), DIGITS),
                        "phrase": self.phrases[j],
                    }
                    for j in picks
                    if contributions[row, j] > 0
                ]
            )
        return result


def _linked(
    trees: Trees,
    margins: npt.NDArray[np.float64],
    scores: npt.NDArray[np.float64],
    tolerance: float,
) -> Trees:
    """The trees with the link that turns their margins into the model's scores: their own
    post_transform, or a logistic one when the graph applies a Sigmoid after the ensemble
    (an exporter may); ValueError when neither gives the scores within `tolerance`."""
    worst = np.inf
    for transform in dict.fromkeys((trees.transform, LOGISTIC)):
        linked = dataclasses.replace(trees, transform=transform)
        worst = min(worst, float(np.max(np.abs(linked.score(margins) - scores), initial=0.0)))
        if worst <= tolerance:
            return linked
    raise ValueError(
        f"the trees read from the model do not give its scores (off by up to {worst:.3g})"
    )


def method_for(trees: Trees, card: ModelCard) -> str:
    """The card's method; a card that names none gets path-dependent TreeSHAP when the trees
    carry covers, interventional when the card ships a background, else ValueError."""
    if card.explanation_method is not None:
        return card.explanation_method
    if has_cover(trees):
        return PATH_DEPENDENT
    if card.background:
        return INTERVENTIONAL
    raise ValueError("the model has no covers and its card no background sample")


def reasoner_for(
    model_bytes: bytes,
    card: ModelCard,
    rows: Sequence[Sequence[float]],
    scores: Sequence[float],
    tolerance: float,
) -> Reasoner:
    """The explainer of the ONNX model in `model_bytes`, checked against the scores the model
    gives `rows` (the trees read must compute them within `tolerance`) and on additivity;
    ValueError (or onnx_trees.UnsupportedModelError, treeshap.NoCoverError) when it cannot be built."""
    if card.explanation_problem:
        raise ValueError(f"the card's explanation: {card.explanation_problem}")
    trees = read_trees(model_bytes, card.positive_class_index)
    matrix = np.asarray(rows, dtype=np.float32).reshape(-1, len(card.feature_names))
    margins = trees.margin(matrix)
    trees = _linked(trees, margins, np.asarray(scores, dtype=np.float64), tolerance)
    explainer = TreeExplainer(
        trees, len(card.feature_names), method_for(trees, card), card.background or None
    )
    check = matrix[:CHECK_ROWS]
    sums = explainer.shap_values(check).sum(axis=1) + explainer.expected_value
    gap = float(np.max(np.abs(sums - margins[:CHECK_ROWS]), initial=0.0))
    if not gap <= ADDITIVITY_TOLERANCE:
        raise ValueError(f"contributions do not add up to the margin (off by {gap:.3g})")
    return Reasoner(explainer, card)
