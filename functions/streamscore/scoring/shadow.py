"""Shadow scoring: a challenger scores every batch beside the champion and decides nothing.

The challenger runs on the champion's feature matrix (its columns in the challenger's order) for
the rows the champion scores. Its score, decision (on its own thresholds) and version are stored
on the champion's prediction in fields of their own (`challenger_*`), never in the decision, the
alert or the champion's counts. What it adds to the hourly counts goes to count items of its own
(kind SHAD, keyed by challenger and champion): its decision, the bins of the features and of its
score over its own baseline, its card-age stratum, the pair of decisions and the pair of score
bins. Those counts are written in the prediction's own transaction, so they move exactly once
per prediction, as the champion's do. A prediction lists every challenger that ever counted it
(`shadow_versions`, carried over when another champion writes it again, as a replay after a
promotion does), and a challenger already listed adds no counts again: each challenger counts a
transaction once (`counts_shadow`, and the stores' condition `creates_prediction`). The list is
carried from the prediction read before the write; a concurrent writer of the same transaction
in between (another shard forwarding it under another champion) could lose its entry.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from streamscore.core.artifacts import SCORE, Thresholds
from streamscore.core.monitoring import Tally, shadow_counts
from streamscore.core.quality import CHALLENGER_DECISION, CHALLENGER_SCORE, CHALLENGER_VERSION
from streamscore.scoring.model import (
    DECISIONS,
    FloatMatrix,
    FloatVector,
    ScoringModel,
    bin_indexes,
    decide,
    feature_matrix,
    history_strata,
)

SHADOW_VERSIONS = "shadow_versions"  # every challenger whose shadow counts include the prediction


@dataclass(frozen=True)
class Challenger:
    model: ScoringModel
    thresholds: Thresholds  # its own: its card's, or the stack's when set for it


@dataclass
class ShadowScores:
    """A challenger's view of a batch, row for row: its matrix, scores (NaN: not scored) and
    decision codes, and how long its model run took."""

    model: ScoringModel
    matrix: FloatMatrix
    scores: FloatVector
    codes: npt.NDArray[np.int8]
    inference_ms: float

    @property
    def version(self) -> str:
        return self.model.model_version

    def fields(self, row: int) -> dict[str, Any]:
        """What the challenger adds to row `row`'s prediction (nothing when it did not score it)."""
        score = float(self.scores[row])
        if math.isnan(score):
            return {}
        return {
            CHALLENGER_VERSION: self.version,
            CHALLENGER_SCORE: score,
            CHALLENGER_DECISION: DECISIONS[int(self.codes[row])],
        }

    def counts(
        self,
        rows: Sequence[int],
        champion_decisions: Sequence[str],
        champion_score_bins: Sequence[int],
        card_ages: FloatVector,
    ) -> list[Tally | None]:
        """What each of `rows` adds to the challenger's shadow counts (None: not scored)."""
        if not rows:
            return []
        own = self.matrix[rows]
        columns = [
            bin_indexes(own[:, j], self.model.edges[name])
            for j, name in enumerate(self.model.feature_names)
        ]
        columns.append(bin_indexes(self.scores[rows], self.model.edges[SCORE]))
        bins = np.column_stack(columns).tolist()
        strata: list[int | None] = [None] * len(rows)
        if self.model.history_bounds is not None:
            strata = history_strata(card_ages, self.model.history_bounds).tolist()
        return [
            None
            if math.isnan(self.scores[row])
            else shadow_counts(
                DECISIONS[int(self.codes[row])],
                row_bins,
                stratum,
                decision,
                (score_bin, row_bins[-1]),
            )
            for row, row_bins, stratum, decision, score_bin in zip(
                rows, bins, strata, champion_decisions, champion_score_bins, strict=True
            )
        ]


def score_shadow(
    challenger: Challenger,
    matrix: FloatMatrix,
    champion_names: Sequence[str],
    features: Callable[[], Sequence[Mapping[str, Any]]],
    rows: Sequence[int],
) -> ShadowScores:
    """The challenger's scores and decisions of `rows` of the champion's `matrix` (the batch's
    rows, features in the champion's order; `features()` the records' own, asked for only by a
    challenger that uses others)."""
    model = challenger.model
    own = challenger_matrix(matrix, champion_names, model.feature_names, features)
    scores = np.full(own.shape[0], np.nan)
    picked = np.asarray(rows, dtype=np.int64)
    picked = picked[~np.isnan(own[picked]).any(axis=1)] if picked.size else picked
    started = time.perf_counter()
    scores[picked] = model.predict(own[picked].astype(np.float32))
    elapsed = (time.perf_counter() - started) * 1000
    codes = np.zeros(own.shape[0], dtype=np.int8)
    codes[picked] = decide(scores[picked], challenger.thresholds)
    return ShadowScores(model, own, scores, codes, elapsed)


def challenger_matrix(
    matrix: FloatMatrix,
    champion_names: Sequence[str],
    names: Sequence[str],
    features: Callable[[], Sequence[Mapping[str, Any]]],
) -> FloatMatrix:
    """The rows with the features `names` in that order: the champion's columns when it uses no
    other, else read again from the records (a row that has not all of them usable is NaN)."""
    if tuple(names) == tuple(champion_names):
        return matrix
    index = {name: j for j, name in enumerate(champion_names)}
    if all(name in index for name in names):
        return matrix[:, [index[name] for name in names]]
    own, problems = feature_matrix(features(), names)
    own[[i for i, p in enumerate(problems) if p is not None]] = np.nan
    return own


def counts_shadow(stored: Mapping[str, Any] | None, challenger_version: str) -> bool:
    """Whether a prediction written with this challenger's shadow adds its shadow counts: not
    when the stored prediction (another champion's) lists the challenger already."""
    return stored is None or challenger_version not in stored.get(SHADOW_VERSIONS, ())


def shadow_history(stored: Mapping[str, Any] | None, challenger_version: str | None) -> list[str]:
    """The `shadow_versions` of a prediction written over `stored` with this challenger's shadow
    (None: without one): the stored list, and the challenger when it counts now."""
    listed = list(stored.get(SHADOW_VERSIONS, ())) if stored is not None else []
    if challenger_version is not None and challenger_version not in listed:
        listed.append(challenger_version)
    return listed


def creates_prediction(
    stored: Mapping[str, Any] | None, item: Mapping[str, Any], adds_shadow: bool
) -> bool:
    """The prediction stores' write condition, stated once (aws/scoring_stores.py writes it as
    a DynamoDB condition): a prediction is written when none is stored, or the stored one is
    another model version's and, when this write adds shadow counts, does not list the
    challenger (a concurrent writer came first)."""
    if stored is None:
        return True
    if stored.get("model_version") == item["model_version"]:
        return False
    return not adds_shadow or counts_shadow(stored, item[CHALLENGER_VERSION])
