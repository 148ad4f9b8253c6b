"""Drift baseline: reference histograms per feature and for the score, shipped with the model."""

from __future__ import annotations

import numpy as np

N_BINS = 10
BINARY_EDGES = [0.0, 0.5, 1.0]


def histogram(reference: np.ndarray, later: np.ndarray) -> dict[str, object]:
    """Bins and reference proportions of one variable, and how much of `later` falls outside.

    Binary variables (all reference values in {0, 1}) get edges [0, 0.5, 1]; others get edges at
    the reference deciles, de-duplicated, so the first edge is the minimum and the last the
    maximum. Proportions follow numpy.histogram: bins are [a, b) except the last, [a, b].
    """
    present = reference[np.isfinite(reference)]
    missing_share = 1.0 - present.size / reference.size if reference.size else 0.0
    if present.size == 0:
        raise ValueError("no finite reference values to bin")
    if np.isin(present, (0.0, 1.0)).all():
        kind, edges = "binary", np.array(BINARY_EDGES)
    else:
        kind = "quantile"
        edges = np.unique(np.quantile(present, np.linspace(0.0, 1.0, N_BINS + 1)))
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


def build_baseline(
    feature_names: tuple[str, ...],
    reference_features: np.ndarray,
    reference_scores: np.ndarray,
    later_features: np.ndarray,
    later_scores: np.ndarray,
) -> dict[str, object]:
    """Histograms of every feature (by name) and of the score."""
    return {
        "features": {
            name: histogram(reference_features[:, i], later_features[:, i])
            for i, name in enumerate(feature_names)
        },
        "score": histogram(reference_scores, later_scores),
    }
