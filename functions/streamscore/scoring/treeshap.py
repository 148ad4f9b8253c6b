"""Exact TreeSHAP for the served tree ensemble, vectorised with numpy over rows and leaves.

The margin is a sum over leaves, so its Shapley values are the sum of each leaf's. A leaf
reached through splits on D distinct features is a game over those features alone: with o_j
whether the row meets the leaf's conditions on feature j and z_j what stands in when j is
unknown, the leaf's value for a coalition S is

    v(S) = value * prod(o_j for j in S) * prod(z_j for j not in S)

(any other feature is a null player and gets nothing). For player j the Shapley sum over
coalitions of size k is the coefficient of t**k in prod_{i != j}(z_i + o_i t), so

    phi_j = value * (o_j - z_j) * sum_k coef_k * k! (D - k - 1)! / D!

* tree_path_dependent (Lundberg et al. 2020, algorithm 2): z_j is the share of training
  samples (cover) that follows the leaf's side at j's splits, so v(S) is the expected margin
  with the features outside S integrated out along the tree; it needs every node's cover.
* interventional: z_j is whether a background row meets the conditions (0 or 1), and the
  values are averaged over the background sample; a closed form of the same sum gives them.

Leaves are grouped by D; per group the work is O(D^2) array operations over (rows x leaves).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from streamscore.scoring.onnx_trees import LEAF, Trees, follows_true

PATH_DEPENDENT = "tree_path_dependent"
INTERVENTIONAL = "interventional"
METHODS = (PATH_DEPENDENT, INTERVENTIONAL)
COVER_TOLERANCE = 1e-5  # a parent's cover against its children's sum (covers are float32)
_CHUNK = 1 << 22  # elements per interventional block (rows x background x leaves x D)

FloatArray = npt.NDArray[np.float64]


class NoCoverError(ValueError):
    """The model's nodes carry no cover (path-dependent TreeSHAP cannot be computed)."""


@dataclass(frozen=True)
class _Group:
    """The leaves whose paths split on `width` distinct features (their slots)."""

    width: int
    value: FloatArray  # (L,)
    feature: npt.NDArray[np.int64]  # (L, M) each path node's feature
    threshold: npt.NDArray[np.float32]  # (L, M)
    mode: npt.NDArray[np.int64]  # (L, M)
    side: npt.NDArray[np.bool_]  # (L, M) the leaf is on the node's true side
    missing_true: npt.NDArray[np.bool_]  # (L, M)
    real: npt.NDArray[np.bool_]  # (L, M) False: padding
    slots: FloatArray  # (L, M, D) one-hot: each path node's slot
    scatter: FloatArray  # (L * D, F) one-hot: each slot's feature
    cover_share: FloatArray  # (L, D) z_j of path-dependent TreeSHAP (NaN without covers)

    def meets(self, matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
        """(n, L, D): whether each row meets each leaf's conditions on each slot's feature."""
        values = matrix[:, self.feature]  # (n, L, M)
        goes_true = follows_true(values, self.threshold, self.mode, self.missing_true)
        fails = ((goes_true != self.side) & self.real).astype(np.float64)
        return np.einsum("nlm,lmd->nld", fails, self.slots) == 0


class TreeExplainer:
    """Shapley values of the margin (log-odds for a logistic model) per feature and row."""

    def __init__(
        self,
        trees: Trees,
        n_features: int,
        method: str = PATH_DEPENDENT,
        background: npt.ArrayLike | None = None,
    ):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.trees, self.n_features, self.method = trees, n_features, method
        if int(trees.feature[trees.mode != LEAF].max(initial=-1)) >= n_features:
            raise ValueError(f"the trees split on a feature beyond the {n_features} given")
        if method == PATH_DEPENDENT and not has_cover(trees):
            raise NoCoverError(
                "the model's nodes_hitrates are not covers (parent = sum of children)"
            )
        self._groups = _groups(trees, n_features)
        self._background: list[tuple[npt.NDArray[np.bool_], FloatArray]] = []
        if method == INTERVENTIONAL:
            if background is None or np.asarray(background).size == 0:
                raise ValueError("interventional TreeSHAP needs a background sample")
            rows = np.asarray(background, dtype=np.float32).reshape(-1, n_features)
            self._background = [_patterns(g.meets(rows)) for g in self._groups]
            self.expected_value = float(trees.margin(rows).mean())
        else:
            self.expected_value = trees.base + sum(
                float(g.value @ np.prod(g.cover_share, axis=1)) for g in self._groups
            )

    def shap_values(self, matrix: npt.ArrayLike) -> FloatArray:
        """(n, features): each feature's contribution to each row's margin; with
        `expected_value` they add up to the margin."""
        rows = np.asarray(matrix, dtype=np.float32).reshape(-1, self.n_features)
        result = np.zeros((len(rows), self.n_features))
        for index, group in enumerate(self._groups):
            if group.width == 0 or len(rows) == 0:
                continue
            meets = group.meets(rows)
            if self.method == PATH_DEPENDENT:
                slots = _path_dependent(meets.astype(np.float64), group)
            else:
                slots = _interventional(meets, *self._background[index], group)
            result += slots.reshape(len(rows), -1) @ group.scatter
        return result


def has_cover(trees: Trees) -> bool:
    """Whether every node's cover is positive and finite, and a split's the sum of its
    children's (a child of cover 0 would make its leaf's share 0 and the unwinding divide by it:
    no sample went there, so no cover tells what it is worth)."""
    inner = np.flatnonzero(trees.mode != LEAF)
    cover = trees.cover
    parent = cover[inner]
    true, false = cover[trees.true_child[inner]], cover[trees.false_child[inner]]
    every = np.concatenate([parent, true, false])
    return bool(
        np.all(np.isfinite(every))
        and np.all(every > 0)
        and np.all(np.abs(true + false - parent) <= COVER_TOLERANCE * parent)
    )


def _shapley_weights(width: int) -> FloatArray:
    """k! (D - k - 1)! / D! for coalitions of k = 0..D-1 other players."""
    factorial = math.factorial
    return np.array(
        [factorial(k) * factorial(width - k - 1) / factorial(width) for k in range(width)]
    )


def _path_dependent(meets: FloatArray, group: _Group) -> FloatArray:
    """(n, L, D) each slot's Shapley value, z the cover shares."""
    width, share = group.width, group.cover_share  # share (L, D)
    n, leaves = meets.shape[:2]
    poly = np.zeros((n, leaves, width + 1))  # coefficients of prod_j (z_j + o_j t)
    poly[..., 0] = 1.0
    for j in range(width):
        shifted = poly[..., :-1] * meets[..., j, None]
        poly *= share[:, j, None]
        poly[..., 1:] += shifted
    weights = _shapley_weights(width)
    result = np.empty((n, leaves, width))
    for j in range(width):
        z, o = share[:, j], meets[..., j]
        # prod without j's factor: divided by (z + t) where o = 1 (synthetic division from the
        # top, stable for z <= 1), by z where o = 0 (z > 0: covers are positive)
        unwound = np.empty((n, leaves, width))
        unwound[..., width - 1] = poly[..., width]
        for k in range(width - 1, 0, -1):
            unwound[..., k - 1] = poly[..., k] - z * unwound[..., k]
        with_j = unwound @ weights
        without_j = (poly[..., :width] @ weights) / z
        result[..., j] = group.value * (o - z) * np.where(o > 0, with_j, without_j)
    return result


def _patterns(
    meets: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.bool_], FloatArray]:
    """The background as what it is to each leaf: which of its D conditions a row meets. With
    fewer patterns (2^D) than rows, each pattern weighted by its share of the rows stands in for
    them (the same sum, computed 2^D instead of m times); else the rows, each weighted 1/m."""
    m, leaves, width = meets.shape
    if 2**width >= m:
        return meets, np.full((m, leaves), 1.0 / m)
    codes = meets.astype(np.int64) @ (1 << np.arange(width, dtype=np.int64))  # (m, L)
    patterns = 1 << width
    flat = (codes * leaves + np.arange(leaves)).reshape(-1)
    weights = np.bincount(flat, minlength=patterns * leaves).reshape(patterns, leaves) / m
    bits = ((np.arange(patterns)[:, None] >> np.arange(width)) & 1).astype(bool)  # (P, D)
    return np.broadcast_to(bits[:, None, :], (patterns, leaves, width)), weights


def _interventional(
    meets: npt.NDArray[np.bool_],
    background: npt.NDArray[np.bool_],
    weights: FloatArray,
    group: _Group,
) -> FloatArray:
    """(n, L, D) each slot's Shapley value averaged over the background (`weights`: each
    background entry's share, per leaf).

    With o and z both 0 or 1, a leaf counts only when no slot has both 0; then with A slots
    where only the row meets the conditions and B where only the background row does, a slot
    of the first kind gets value (A-1)! B! / (A+B)!, of the second -value A! (B-1)! / (A+B)!.
    """
    n, leaves, width = meets.shape
    factorial = np.array([math.factorial(k) for k in range(width + 2)], dtype=np.float64)
    result = np.zeros((n, leaves, width))
    step = max(1, _CHUNK // max(1, n * leaves * width))
    for start in range(0, len(background), step):
        z = background[start : start + step][None]  # (1, b, L, D)
        o = meets[:, None]  # (n, 1, L, D)
        only_row, only_background = o & ~z, ~o & z
        counts = ~np.any(~o & ~z, axis=-1) * weights[start : start + step]  # (n, b, L)
        a = only_row.sum(axis=-1)
        b = only_background.sum(axis=-1)
        total = factorial[a + b]
        up = np.where(a > 0, factorial[np.maximum(a - 1, 0)] * factorial[b] / total, 0.0)
        down = np.where(b > 0, factorial[a] * factorial[np.maximum(b - 1, 0)] / total, 0.0)
        shares: FloatArray = only_row * up[..., None] - only_background * down[..., None]
        result += np.sum(shares * counts[..., None], axis=1)
    return result * group.value[:, None]


def _paths(trees: Trees) -> list[tuple[int, list[tuple[int, bool]]]]:
    """Each leaf with the (node, took the true branch) pairs from its root."""
    found: list[tuple[int, list[tuple[int, bool]]]] = []
    for root in trees.roots.tolist():
        stack: list[tuple[int, list[tuple[int, bool]]]] = [(root, [])]
        while stack:
            node, path = stack.pop()
            if trees.mode[node] == LEAF:
                found.append((node, path))
                continue
            stack.append((int(trees.false_child[node]), [*path, (node, False)]))
            stack.append((int(trees.true_child[node]), [*path, (node, True)]))
    return found


def _groups(trees: Trees, n_features: int) -> list[_Group]:
    by_width: dict[int, list[tuple[int, list[tuple[int, bool]]]]] = {}
    for leaf, path in _paths(trees):
        width = len({int(trees.feature[node]) for node, _ in path})
        by_width.setdefault(width, []).append((leaf, path))
    return [_group(trees, width, leaves, n_features) for width, leaves in sorted(by_width.items())]


def _group(
    trees: Trees, width: int, leaves: list[tuple[int, list[tuple[int, bool]]]], n_features: int
) -> _Group:
    count, depth = len(leaves), max(1, *(len(path) for _, path in leaves))
    feature = np.zeros((count, depth), dtype=np.int64)
    node_index = np.zeros((count, depth), dtype=np.int64)
    side = np.zeros((count, depth), dtype=bool)
    real = np.zeros((count, depth), dtype=bool)
    slots = np.zeros((count, depth, width))
    slot_feature = np.zeros((count, width), dtype=np.int64)
    share = np.ones((count, width))
    with np.errstate(divide="ignore", invalid="ignore"):
        for row, (_, path) in enumerate(leaves):
            order: dict[int, int] = {}
            for position, (node, took_true) in enumerate(path):
                f = int(trees.feature[node])
                slot = order.setdefault(f, len(order))
                child = trees.true_child[node] if took_true else trees.false_child[node]
                share[row, slot] *= trees.cover[child] / trees.cover[node]
                feature[row, position], node_index[row, position] = f, node
                side[row, position], real[row, position] = took_true, True
                slots[row, position, slot] = 1.0
                slot_feature[row, slot] = f
    scatter = np.zeros((count * width, n_features))
    scatter[np.arange(count * width), slot_feature.reshape(-1)] = 1.0
    return _Group(
        width=width,
        value=trees.value[[leaf for leaf, _ in leaves]],
        feature=feature,
        threshold=trees.threshold[node_index],
        mode=trees.mode[node_index],
        side=side,
        missing_true=trees.missing_true[node_index],
        real=real,
        slots=slots,
        scatter=scatter,
        cover_share=share,
    )
