"""Drift baseline: reference histograms per feature and for the score, shipped with the model.

Each variable has its bins and the reference's proportions over them, and, per card-age
stratum, the proportions among reference rows of cards the replay had known that long
(`history`). The drift check mixes the strata in a window's own proportions, so a freshly
deployed stack (every card new to it) or a new population of cards is compared with
cards of the same history depth, not called drift (docs/ARCHITECTURE.md, "Drift on a
fresh stack").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np

from streamscore.scoring.model import history_strata

N_BINS = 10
BINARY_EDGES = [0.0, 0.5, 1.0]
HOUR, DAY = 3600.0, 86400.0
# Lower bounds of the card-age strata (seconds): finer where features change fastest. A card's
# first transaction has age 0; 14 days is past every lookback (the 24 h counters' floor is
# 4.6 days, the amount moments' 1/alpha = 20 transactions at the median rate).
HISTORY_STRATA_S: tuple[float, ...] = (
    0.0,
    1.0,
    HOUR,
    6 * HOUR,
    12 * HOUR,
    DAY,
    2 * DAY,
    3 * DAY,
    5 * DAY,
    7 * DAY,
    14 * DAY,
)
HISTORY_LABELS = (
    "first seen",
    "< 1 h",
    "1-6 h",
    "6-12 h",
    "12-24 h",
    "1-2 d",
    "2-3 d",
    "3-5 d",
    "5-7 d",
    "7-14 d",
    ">= 14 d",
)
SETTLED_S = 14 * DAY
MIN_STRATUM_ROWS = 100  # fewer rows: the stratum uses the flat reference's proportions


@dataclass(frozen=True)
class HistoryPool:
    """Rows the strata's references come from: values per variable (model order, then the
    score) and each row's card age. Rows the model never trained on."""

    values: np.ndarray  # [rows, variables]
    card_ages: np.ndarray  # seconds


def strata_of(card_ages: np.ndarray) -> np.ndarray:
    """Each card age's stratum index in HISTORY_STRATA_S, as the score function counts it."""
    return history_strata(card_ages.astype(np.float64), np.asarray(HISTORY_STRATA_S))


def bin_edges(present: np.ndarray, floor: float | None = None) -> tuple[str, np.ndarray]:
    """Binary variables (all values in {0, 1}) get [0, 0.5, 1]; others the deciles, de-duplicated.

    With `floor` (a decayed counter's resolution), values below it share one first bin
    [0, floor): the deciles at or below it are dropped, those above kept.
    """
    if np.isin(present, (0.0, 1.0)).all():
        return "binary", np.array(BINARY_EDGES)
    deciles = np.unique(np.quantile(present, np.linspace(0.0, 1.0, N_BINS + 1)))
    if floor is None:
        return "quantile", deciles
    low = min(0.0, float(deciles[0]))
    return "quantile", np.unique(np.concatenate([[low, floor], deciles[deciles > floor]]))


def proportions_over(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares of `values` (finite ones) in each bin of `edges`, np.histogram's bins; zeros if none."""
    present = values[np.isfinite(values)]
    inside = present[(present >= edges[0]) & (present <= edges[-1])]
    if inside.size == 0:
        return np.zeros(len(edges) - 1)
    return np.histogram(inside, bins=edges)[0] / inside.size


def histogram(
    reference: np.ndarray, later: np.ndarray, floor: float | None = None
) -> dict[str, object]:
    """Bins and reference proportions of one variable, and how much of `later` falls outside.

    The first edge is the minimum and the last the maximum (with a floor, the first is 0).
    Proportions follow numpy.histogram: bins are [a, b) except the last, [a, b].
    """
    present = reference[np.isfinite(reference)]
    missing_share = 1.0 - present.size / reference.size if reference.size else 0.0
    if present.size == 0:
        raise ValueError("no finite reference values to bin")
    kind, edges = bin_edges(present, floor)
    if edges.size == 1:  # a constant: one closed bin [v, v]
        proportions = np.ones(1)
        edges = np.repeat(edges, 2)
    else:
        proportions = np.histogram(present, bins=edges)[0] / present.size
    seen_later = later[np.isfinite(later)]
    outside = (seen_later < edges[0]) | (seen_later > edges[-1])
    return {
        "kind": kind,
        "edges": [float(edge) for edge in edges],
        "proportions": [float(share) for share in proportions],
        "missing_share": float(missing_share),
        "out_of_range_share": float(outside.mean()) if seen_later.size else 0.0,
    }


def _by_history(
    entry: Mapping[str, object], values: np.ndarray, strata: np.ndarray
) -> list[list[float]]:
    edges = np.asarray(entry["edges"], dtype=np.float64)
    flat = [float(p) for p in entry["proportions"]]  # type: ignore[attr-defined]
    rows = []
    for stratum in range(len(HISTORY_STRATA_S)):
        chosen = values[strata == stratum]
        if np.isfinite(chosen).sum() < MIN_STRATUM_ROWS:
            rows.append(flat)
        else:
            rows.append([float(p) for p in proportions_over(chosen, edges)])
    return rows


def build_baseline(
    feature_names: tuple[str, ...],
    reference_features: np.ndarray,
    reference_scores: np.ndarray,
    later_features: np.ndarray,
    later_scores: np.ndarray,
    *,
    floors: Mapping[str, float] | None = None,
    clock: Collection[str] = (),
    reference_ages: np.ndarray | None = None,
    pool: HistoryPool | None = None,
) -> dict[str, object]:
    """Histograms of every feature (by name) and of the score; with `pool`, per card-age stratum.

    `floors` gives the decayed counters' resolution; `clock` the features that follow the
    time of day (marked `follows_clock`); `reference_ages` the reference rows' card ages
    (for the strata's shares in the reference).
    """
    floors = floors or {}
    entries: dict[str, dict[str, object]] = {
        name: histogram(reference_features[:, i], later_features[:, i], floors.get(name))
        for i, name in enumerate(feature_names)
    }
    for name in clock:
        entries[name]["follows_clock"] = True
    score = histogram(reference_scores, later_scores)
    baseline: dict[str, object] = {"features": entries, "score": score}
    if pool is None:
        return baseline
    strata = strata_of(pool.card_ages)
    for i, name in enumerate(feature_names):
        entries[name]["by_history"] = _by_history(entries[name], pool.values[:, i], strata)
    score["by_history"] = _by_history(score, pool.values[:, len(feature_names)], strata)
    counts = np.bincount(strata, minlength=len(HISTORY_STRATA_S))
    reference_counts = (
        np.bincount(strata_of(reference_ages), minlength=len(HISTORY_STRATA_S))
        if reference_ages is not None
        else counts
    )
    baseline["history"] = {
        "strata_s": list(HISTORY_STRATA_S),
        "labels": list(HISTORY_LABELS),
        "settled_s": SETTLED_S,
        "sample_sizes": [int(c) for c in counts],
        "reference_shares": [
            float(c) / max(int(reference_counts.sum()), 1) for c in reference_counts
        ],
        "min_stratum_rows": MIN_STRATUM_ROWS,
    }
    return baseline
