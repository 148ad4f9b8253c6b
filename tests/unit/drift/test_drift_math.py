"""Drift math against hand-computed values and scipy, including empty bins and tiny samples."""

from __future__ import annotations

import math

import hypothesis.strategies as st
import pytest
from hypothesis import example, given
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp

from streamscore.drift.stats import (
    PSI_SMOOTHING,
    DriftThresholds,
    classify,
    compare,
    js_distance,
    ks_binned,
    overall_status,
    psi,
    smooth,
    with_out_of_range,
)


def test_psi_hand_computed() -> None:
    # given
    expected = [0.5, 0.5]
    actual = [0.7, 0.3]

    # when
    hand = (0.7 - 0.5) * math.log(0.7 / 0.5) + (0.3 - 0.5) * math.log(0.3 / 0.5)

    # then
    assert psi(expected, actual) == pytest.approx(hand, rel=1e-9)
    assert hand == pytest.approx(0.1695, abs=1e-4)


def test_psi_is_zero_for_identical_and_symmetric() -> None:
    p = [0.1, 0.2, 0.3, 0.4]
    q = [0.25, 0.25, 0.25, 0.25]

    assert psi(p, p) == 0.0
    assert psi(p, q) == pytest.approx(psi(q, p))


def test_psi_smooths_empty_bins_instead_of_going_infinite() -> None:
    expected = [0.5, 0.5, 0.0]
    actual = [0.5, 0.0, 0.5]

    value = psi(expected, actual)

    e = smooth(expected)
    a = smooth(actual)
    hand = sum((ai - ei) * math.log(ai / ei) for ei, ai in zip(e, a, strict=True))
    assert math.isfinite(value)
    assert value == pytest.approx(hand)
    assert e[2] == pytest.approx(PSI_SMOOTHING / (1 + PSI_SMOOTHING))
    assert value > 4  # moving half the mass to a bin the baseline never saw is massive drift


def test_js_distance_matches_scipy_and_bounds() -> None:
    p = [0.1, 0.4, 0.5, 0.0]
    q = [0.3, 0.3, 0.2, 0.2]

    assert js_distance(p, q) == pytest.approx(float(jensenshannon(p, q, base=2)), abs=1e-12)
    assert js_distance(p, p) == 0.0
    assert js_distance([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)


def test_ks_binned_hand_computed_and_against_scipy_on_samples() -> None:
    assert ks_binned([0.5, 0.5, 0.0], [0.2, 0.3, 0.5]) == pytest.approx(0.5)

    # Samples that sit exactly on bin centres: the binned statistic equals the exact one.
    a = [0] * 50 + [1] * 30 + [2] * 20
    b = [0] * 20 + [1] * 30 + [2] * 50
    exact = ks_2samp(a, b).statistic
    assert ks_binned([0.5, 0.3, 0.2], [0.2, 0.3, 0.5]) == pytest.approx(exact)


def test_mismatched_bins_are_refused() -> None:
    with pytest.raises(ValueError, match="2 and 3 bins"):
        psi([0.5, 0.5], [0.3, 0.3, 0.4])


@pytest.mark.parametrize(
    ("psi_value", "js_value", "n", "status"),
    [
        (0.0, 0.0, 499, "insufficient_data"),
        (0.09, 0.0, 500, "ok"),
        (0.1, 0.0, 500, "warn"),  # thresholds are inclusive
        (0.25, 0.0, 500, "drift"),
        (0.0, 0.1, 500, "drift"),  # JS alone can call drift
        (0.3, 0.3, 10, "insufficient_data"),  # a tiny sample never calls drift
    ],
)
def test_classify_edges(psi_value: float, js_value: float, n: int, status: str) -> None:
    assert classify(psi_value, js_value, n, DriftThresholds()) == status


def test_compare_uses_out_of_range_as_its_own_bin() -> None:
    # given
    thresholds = DriftThresholds(min_samples=10)
    reference = [0.25, 0.25, 0.25, 0.25]

    # when
    same = compare(reference, 0.0, [250, 250, 250, 250], 0, thresholds)
    shifted = compare(reference, 0.0, [250, 250, 250, 0], 250, thresholds)

    # then
    assert same.psi == pytest.approx(0.0, abs=1e-12)
    assert same.status == "ok"
    assert shifted.n == 1000
    assert shifted.status == "drift"
    assert shifted.ks == pytest.approx(0.25)  # a quarter of the mass moved past the last edge


def test_compare_with_no_observations_is_insufficient() -> None:
    stats = compare([0.5, 0.5], 0.0, [0, 0], 0, DriftThresholds())

    assert stats.status == "insufficient_data"
    assert stats.n == 0


def test_overall_status_is_the_worst() -> None:
    assert overall_status(["ok", "warn", "insufficient_data"]) == "warn"
    assert overall_status(["ok", "drift"]) == "drift"
    assert overall_status(["insufficient_data"]) == "insufficient_data"
    assert overall_status([]) == "insufficient_data"


proportion_vectors = st.lists(st.floats(min_value=0, max_value=1), min_size=3, max_size=3).filter(
    lambda v: sum(v) > 0.01
)


@example(p=[0.0, 1.0, 0.0], q=[0.0, 1.0, 5e-324])  # a denormal share: its midpoint underflows
@given(p=proportion_vectors, q=proportion_vectors)
def test_statistics_are_finite_non_negative_and_bounded(p: list[float], q: list[float]) -> None:
    p = [x / sum(p) for x in p]
    q = [x / sum(q) for x in q]

    assert psi(p, q) >= 0 and math.isfinite(psi(p, q))
    assert 0 <= js_distance(p, q) <= 1 + 1e-12
    assert 0 <= ks_binned(p, q) <= 1 + 1e-12


def test_psi_only_thresholds_never_call_drift_on_js_alone() -> None:
    thresholds = DriftThresholds().psi_only()

    assert classify(0.0, 0.9, 500, thresholds) == "ok"
    assert classify(0.25, 0.0, 500, thresholds) == "drift"
    assert (thresholds.psi_warn, thresholds.psi_drift, thresholds.min_samples) == (0.1, 0.25, 500)


def test_reference_with_out_of_range_sums_to_one_and_keeps_the_shape() -> None:
    expected = with_out_of_range([0.5, 0.25, 0.25], 0.2)

    assert expected == pytest.approx([0.4, 0.2, 0.2, 0.2])
    assert sum(expected) == pytest.approx(1.0)
    assert with_out_of_range([0.5, 0.5], 0.0) == [0.5, 0.5, 0.0]


def test_one_observation_in_a_bin_the_baseline_never_saw_stays_finite() -> None:
    stats = compare([0.5, 0.5], 0.0, [0, 0], 1, DriftThresholds(min_samples=1))

    # the single value is out of range, where the baseline has nothing: smoothed, not infinite
    assert math.isfinite(stats.psi)
    assert stats.psi > 5
    assert stats.js_distance == pytest.approx(1.0)
    assert stats.ks == pytest.approx(1.0)
    assert stats.status == "drift"
