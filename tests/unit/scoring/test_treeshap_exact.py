"""TreeSHAP against Shapley values by brute force: every coalition enumerated, on random small
forests that repeat features along a path, split with every comparison mode, route NaN both
ways, and (interventional) on backgrounds with and without pattern grouping."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from streamscore.scoring.onnx_trees import EQ, GT, GTE, LEAF, LEQ, LT, NEQ, Trees, follows_true
from streamscore.scoring.treeshap import (
    INTERVENTIONAL,
    PATH_DEPENDENT,
    NoCoverError,
    TreeExplainer,
    has_cover,
)

FEATURES = 4
VALUES = np.array([-1.0, 0.0, 1.0, 2.0, np.nan], dtype=np.float32)  # NaN: missing


def random_forest(seed: int, trees: int = 3, depth: int = 4) -> Trees:
    """Full-ish random trees over FEATURES discrete features (equality splits can hold)."""
    rng = np.random.default_rng(seed)
    nodes: list[dict[str, float]] = []

    def grow(level: int) -> int:
        index = len(nodes)
        nodes.append({})
        if level == depth or (level > 1 and rng.random() < 0.25):
            cover = float(rng.integers(1, 50))
            nodes[index] = {"mode": LEAF, "value": float(rng.normal()), "cover": cover}
            return index
        split = {
            "mode": int(rng.choice([LEQ, LT, GTE, GT, EQ, NEQ])),
            "feature": int(rng.integers(FEATURES)),
            "threshold": float(rng.choice(VALUES[:-1])),
            "missing_true": bool(rng.random() < 0.5),
        }
        split["true"], split["false"] = grow(level + 1), grow(level + 1)
        split["cover"] = nodes[split["true"]]["cover"] + nodes[split["false"]]["cover"]
        nodes[index] = split
        return index

    roots = [grow(0) for _ in range(trees)]

    def column(name: str, default: float, dtype: type) -> np.ndarray:
        return np.array([n.get(name, default) for n in nodes], dtype=dtype)

    return Trees(
        feature=column("feature", 0, np.int64),
        threshold=column("threshold", 0.0, np.float32),
        mode=column("mode", LEAF, np.int64),
        true_child=column("true", -1, np.int64),
        false_child=column("false", -1, np.int64),
        missing_true=column("missing_true", False, bool),
        cover=column("cover", 1.0, np.float64),
        value=np.array([n.get("value", 0.0) if n["mode"] == LEAF else 0.0 for n in nodes]),
        roots=np.array(roots, dtype=np.int64),
        base=0.25,
        transform="logistic",
    )


def _expected_by_path(trees: Trees, x: np.ndarray, known: set[int]) -> float:
    """E[margin | x_known], the unknown features integrated out along the tree by cover."""

    def walk(node: int) -> float:
        if trees.mode[node] == LEAF:
            return float(trees.value[node])
        true, false = int(trees.true_child[node]), int(trees.false_child[node])
        feature = int(trees.feature[node])
        if feature in known:
            goes = follows_true(
                x[feature : feature + 1],
                trees.threshold[node : node + 1],
                trees.mode[node : node + 1],
                trees.missing_true[node : node + 1],
            )[0]
            return walk(true if goes else false)
        weight = trees.cover[true] / trees.cover[node]
        return weight * walk(true) + (1 - weight) * walk(false)

    return trees.base + sum(walk(int(root)) for root in trees.roots)


def _expected_by_background(
    trees: Trees, x: np.ndarray, known: set[int], background: np.ndarray
) -> float:
    rows = background.copy()
    rows[:, sorted(known)] = x[sorted(known)]
    return float(trees.margin(rows).mean())


def brute_force(value_of) -> np.ndarray:
    """Shapley values of the game `value_of(coalition)` over FEATURES players."""
    phi = np.zeros(FEATURES)
    for player in range(FEATURES):
        others = [j for j in range(FEATURES) if j != player]
        for size in range(FEATURES):
            weight = math.factorial(size) * math.factorial(FEATURES - size - 1)
            weight /= math.factorial(FEATURES)
            for coalition in itertools.combinations(others, size):
                known = set(coalition)
                phi[player] += weight * (value_of(known | {player}) - value_of(known))
    return phi


@pytest.mark.parametrize("seed", range(6))
def test_path_dependent_values_are_the_shapley_values_of_the_cover_game(seed: int) -> None:
    trees = random_forest(seed)
    assert has_cover(trees)
    explainer = TreeExplainer(trees, FEATURES, PATH_DEPENDENT)
    rng = np.random.default_rng(100 + seed)
    rows = rng.choice(VALUES, size=(12, FEATURES))
    ours = explainer.shap_values(rows)
    assert explainer.expected_value == pytest.approx(_expected_by_path(trees, rows[0], set()))
    for row, mine in zip(rows, ours, strict=True):
        exact = brute_force(lambda known, row=row: _expected_by_path(trees, row, known))
        assert np.max(np.abs(mine - exact)) <= 1e-9
        assert mine.sum() + explainer.expected_value == pytest.approx(
            float(trees.margin(row[None])[0]), abs=1e-9
        )


@pytest.mark.parametrize(("seed", "background_rows"), [(0, 3), (1, 40), (2, 200), (3, 7)])
def test_interventional_values_are_the_shapley_values_of_the_background_game(
    seed: int, background_rows: int
) -> None:
    """Few background rows are taken one by one, many are grouped by the patterns of each
    leaf's conditions: both give the exact values."""
    trees = random_forest(seed)
    rng = np.random.default_rng(200 + seed)
    background = rng.choice(VALUES, size=(background_rows, FEATURES))
    explainer = TreeExplainer(trees, FEATURES, INTERVENTIONAL, background)
    rows = rng.choice(VALUES, size=(8, FEATURES))
    ours = explainer.shap_values(rows)
    assert explainer.expected_value == pytest.approx(float(trees.margin(background).mean()))
    for row, mine in zip(rows, ours, strict=True):
        exact = brute_force(
            lambda known, row=row: _expected_by_background(trees, row, known, background)
        )
        assert np.max(np.abs(mine - exact)) <= 1e-9


def test_a_child_nothing_went_through_is_no_cover() -> None:
    """A leaf of cover 0 would make the unwinding divide by 0: such trees have no cover."""
    trees = random_forest(0)
    leaf = int(np.flatnonzero(trees.mode == LEAF)[0])
    cover = trees.cover.copy()
    taken, node = cover[leaf], leaf
    while True:  # every ancestor loses what went through the leaf: the sums still hold
        cover[node] -= taken
        parents = np.flatnonzero((trees.true_child == node) | (trees.false_child == node))
        if parents.size == 0:
            break
        node = int(parents[0])
    broken = Trees(**{**trees.__dict__, "cover": cover})
    assert cover[leaf] == 0 and np.all(cover[trees.roots] > 0)
    assert not has_cover(broken)
    with pytest.raises(NoCoverError):
        TreeExplainer(broken, FEATURES, PATH_DEPENDENT)
