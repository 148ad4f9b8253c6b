"""Drift statistics on binned distributions: PSI, Jensen-Shannon distance, KS from binned CDFs.

Inputs are counts over a baseline's bins (plus an out-of-range bin) and the
baseline's reference proportions. Pure Python: the vectors are a dozen bins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

Status = Literal["ok", "warn", "drift", "insufficient_data"]
STATUS_ORDER: dict[str, int] = {"insufficient_data": 0, "ok": 1, "warn": 2, "drift": 3}
PSI_SMOOTHING = 1e-4  # share given to an empty bin so PSI stays finite


@dataclass(frozen=True)
class DriftThresholds:
    psi_warn: float = 0.1
    psi_drift: float = 0.25
    js_drift: float = 0.1
    min_samples: int = 500

    def psi_only(self) -> DriftThresholds:
        """The same thresholds without the JS rule (JS distance is still computed and reported)."""
        return replace(self, js_drift=math.inf)


@dataclass(frozen=True)
class DriftStats:
    psi: float
    js_distance: float
    ks: float
    n: int
    status: Status


def to_proportions(counts: Sequence[float]) -> list[float]:
    total = float(sum(counts))
    if total <= 0:
        raise ValueError("no observations to turn into proportions")
    return [c / total for c in counts]


def smooth(proportions: Sequence[float], epsilon: float = PSI_SMOOTHING) -> list[float]:
    """Empty bins get `epsilon`, then everything is renormalised to sum to 1."""
    floored = [max(p, epsilon) for p in proportions]
    total = sum(floored)
    return [p / total for p in floored]


def psi(
    expected: Sequence[float], actual: Sequence[float], epsilon: float = PSI_SMOOTHING
) -> float:
    """Population stability index of `actual` against `expected` (both proportions)."""
    _same_length(expected, actual)
    e, a = smooth(expected, epsilon), smooth(actual, epsilon)
    return sum((ai - ei) * math.log(ai / ei) for ei, ai in zip(e, a, strict=True))


def js_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon distance (square root of the divergence, base 2): 0 same, 1 disjoint."""
    _same_length(p, q)
    m = [(pi + qi) / 2 for pi, qi in zip(p, q, strict=True)]

    def kl(x: Sequence[float]) -> float:
        # mi can underflow to 0 for a denormal xi; such a term is below 1e-323 anyway
        return sum(
            xi * math.log2(xi / mi) for xi, mi in zip(x, m, strict=True) if xi > 0 and mi > 0
        )

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2))


def ks_binned(p: Sequence[float], q: Sequence[float]) -> float:
    """Kolmogorov-Smirnov statistic between two binned distributions: max gap of their CDFs."""
    _same_length(p, q)
    gap = cdf_p = cdf_q = 0.0
    for pi, qi in zip(p, q, strict=True):
        cdf_p += pi
        cdf_q += qi
        gap = max(gap, abs(cdf_p - cdf_q))
    return gap


def classify(psi_value: float, js_value: float, n: int, thresholds: DriftThresholds) -> Status:
    if n < thresholds.min_samples:
        return "insufficient_data"
    if psi_value >= thresholds.psi_drift or js_value >= thresholds.js_drift:
        return "drift"
    if psi_value >= thresholds.psi_warn:
        return "warn"
    return "ok"


def compare(
    reference: Sequence[float],
    reference_out_of_range: float,
    counts: Sequence[int],
    out_of_range: int,
    thresholds: DriftThresholds,
) -> DriftStats:
    """Drift of observed bin counts (+ out-of-range) against a baseline's proportions (+ its share)."""
    n = int(sum(counts)) + out_of_range
    if n == 0:
        return DriftStats(0.0, 0.0, 0.0, 0, "insufficient_data")
    expected = with_out_of_range(reference, reference_out_of_range)
    actual = to_proportions([*counts, out_of_range])
    psi_value = psi(expected, actual)
    js_value = js_distance(expected, actual)
    ks_value = ks_binned(expected, actual)
    return DriftStats(
        psi_value, js_value, ks_value, n, classify(psi_value, js_value, n, thresholds)
    )


def with_out_of_range(reference: Sequence[float], out_of_range_share: float) -> list[float]:
    """A baseline's in-range proportions scaled to leave `out_of_range_share`, which is appended as the last bin."""
    in_range = 1.0 - out_of_range_share
    return [p * in_range for p in reference] + [out_of_range_share]


def overall_status(statuses: Sequence[Status]) -> Status:
    """The worst status, where drift > warn > ok > insufficient_data; none at all is insufficient."""
    return max(statuses, key=STATUS_ORDER.__getitem__, default="insufficient_data")


def _same_length(a: Sequence[float], b: Sequence[float]) -> None:
    if len(a) != len(b):
        raise ValueError(f"distributions have {len(a)} and {len(b)} bins")
