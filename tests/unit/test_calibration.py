"""Calibration in training: the recalibration test, the reliability curve, and the correction
folded into the ONNX trees (parity with the corrected native model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit, logit
from sklearn.ensemble import GradientBoostingClassifier

from training import export
from training.calibration import (
    CALIBRATION_ALPHA,
    IDENTITY,
    Recalibration,
    calibration_error,
    decide,
    fit_recalibration,
    measure,
)

ARTIFACTS = Path(__file__).resolve().parents[2] / "models" / "artifacts"


def _labelled(log_odds: np.ndarray, truth: np.ndarray, seed: int) -> np.ndarray:
    """Labels drawn with probability sigmoid(truth log-odds)."""
    return (np.random.default_rng(seed).random(log_odds.size) < expit(truth)).astype(np.int64)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_calibrated_scores_are_left_alone_and_overconfident_ones_corrected(seed: int) -> None:
    rng = np.random.default_rng(seed)
    z = rng.normal(-4.0, 2.5, 20_000)
    calibrated = _labelled(z, z, seed)
    # a model twice as confident as the truth: its log-odds are 2x the true ones
    overconfident = _labelled(z, z / 2, seed)

    _, p_good = fit_recalibration(calibrated, z)
    fitted, p_bad = fit_recalibration(overconfident, z)

    assert p_good > CALIBRATION_ALPHA / 10  # calibrated: rarely rejected (seeds fixed)
    assert p_bad < 1e-6
    assert fitted.slope == pytest.approx(0.5, abs=0.08)
    assert fitted.intercept == pytest.approx(0.0, abs=0.3)
    held_out = _labelled(z, z / 2, seed + 100)
    decision = decide((overconfident, z), (held_out, z))
    assert decision.recalibration == fitted and decision.record["applied"] is True
    before = measure(held_out, expit(z))
    after = measure(held_out, fitted.apply(z))
    assert float(after["brier"]) < float(before["brier"])


def test_the_reliability_curve_counts_every_transaction_once() -> None:
    rng = np.random.default_rng(5)
    p = rng.random(1000) ** 4
    y = (rng.random(1000) < p).astype(np.int64)

    record = measure(y, p)

    curve = record["reliability"]
    assert isinstance(curve, list)
    assert sum(row["n"] for row in curve) == 1000
    assert sum(row["frauds"] for row in curve) == y.sum()
    assert sum(row["expected_frauds"] for row in curve) == pytest.approx(p.sum())
    for row in curve:
        low, high = row["fraud_rate_95"]
        assert low <= row["fraud_rate"] <= high


def test_a_correction_folded_into_the_trees_matches_the_corrected_native_model() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2000, 4))
    y = (rng.random(2000) < expit(2 * x[:, 0] - 3)).astype(np.int64)
    model = GradientBoostingClassifier(n_estimators=15, max_depth=2, random_state=0).fit(x, y)
    line = Recalibration(slope=1.3, intercept=-0.4)

    proto = export.to_onnx(model, 4)
    export.fold_recalibration(proto, line)
    session = export.inference_session(proto.SerializeToString())

    difference = export.check_parity(session, export.Calibrated(model, line), x)
    assert difference <= export.PARITY_TOLERANCE
    served = export.onnx_probabilities(session, x)[:, 1]
    native = model.predict_proba(x.astype(np.float32))[:, 1]
    # the same ranking, moved along the line in log-odds
    assert logit(served.astype(np.float64)) == pytest.approx(1.3 * logit(native) - 0.4, abs=1e-4)
    identity = export.to_onnx(model, 4)
    export.fold_recalibration(identity, IDENTITY)
    assert identity.SerializeToString() == export.to_onnx(model, 4).SerializeToString()


def test_the_shipped_card_records_calibration_and_the_served_scores_are_calibrated() -> None:
    card = json.loads((ARTIFACTS / "model_card.json").read_text())
    record = card["calibration"]

    served, before = record["served"]["test"], record["uncorrected"]["test"]
    assert record["applied"] == (record["p_value"] < CALIBRATION_ALPHA)
    assert served["brier"] <= before["brier"] and served["log_loss"] <= before["log_loss"]
    assert abs(served["spiegelhalter_z"]) < 2.58  # not rejected at 1 % on the held-out slice
    assert served["frauds"] == card["metrics"]["test"]["n_fraud"]


def test_the_calibration_error_is_the_size_of_the_gap_in_frauds_per_transaction() -> None:
    truth = np.random.default_rng(5).beta(0.5, 5.0, 50_000)
    y = (np.random.default_rng(6).random(truth.size) < truth).astype(np.int64)

    calibrated = calibration_error(y, truth)
    doubled = calibration_error(y, np.minimum(truth * 2, 1.0))

    assert calibrated < 0.005  # sampling noise only
    # doubling every score over-counts by about the mean fraud rate (~0.09)
    assert doubled == pytest.approx(float(np.minimum(truth * 2, 1.0).mean() - y.mean()), rel=0.1)
    assert calibration_error(np.array([]), np.array([])) == 0.0
