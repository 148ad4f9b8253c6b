"""Calibration: is P(fraud) what the score says, and the correction when it is not.

The quality check's estimate (drift/quality.py `estimated`) takes each score as the probability
that the transaction is fraud: the expected frauds among approvals are the sum of their scores.
That holds only for calibrated scores, so training measures calibration and corrects it when a
test says it must.

- **Measured** on the validation slice (the thresholds' slice) and on the held-out test slice:
  the Brier score, the log loss, a reliability curve over fixed score bins (mean score against
  the observed fraud rate, with a Wilson interval), and Spiegelhalter's z (calibration-in-the-
  large and spread; |z| > 2.58 rejects "calibrated" at 1 %).
- **Test for recalibration** (Cox's): logistic regression of the label on the model's log-odds,
  fitted on the validation slice. A calibrated model has slope 1 and intercept 0; the likelihood
  ratio of the fitted line against (1, 0) is chi-squared with 2 degrees of freedom under that
  hypothesis. Recalibrate when its p-value is below CALIBRATION_ALPHA.
- **The correction** is that same line, Platt scaling on the log-odds: score' = sigmoid(slope x
  log-odds + intercept). A gradient-boosted model's log-odds are its base value plus its trees'
  leaf values, so the line folds into the ONNX model itself (every leaf value times the slope,
  the base value times the slope plus the intercept). Nothing is added to the graph, the serving
  code does not change, and the reasons (Shapley values of the log-odds) stay exact: each is
  the slope times the uncorrected one. Export checks parity against the corrected native model.
- **Kept only if the held-out test slice agrees**: the corrected model must not have a higher
  log loss on the test slice than the uncorrected one; otherwise the card records why not.

A monotone map changes no ranking: PR-AUC, ROC-AUC and which transactions each threshold flags
stay the same (thresholds are chosen on the corrected scores).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit
from scipy.stats import chi2

from streamscore.drift.quality import wilson_interval

CALIBRATION_ALPHA = 0.01
RELIABILITY_EDGES = (0.0, 0.001, 0.01, 0.05, 0.2, 0.5, 0.9, 1.0)
_EPSILON = 1e-15


@dataclass(frozen=True, slots=True)
class Recalibration:
    """score' = sigmoid(slope * log-odds + intercept); slope 1, intercept 0 changes nothing."""

    slope: float = 1.0
    intercept: float = 0.0

    def apply(self, log_odds: np.ndarray) -> np.ndarray:
        """P(fraud) from the uncorrected log-odds."""
        z = np.asarray(log_odds, dtype=np.float64)
        return np.asarray(expit(self.slope * z + self.intercept))


IDENTITY = Recalibration()


def log_likelihood(y: np.ndarray, p: np.ndarray) -> float:
    q = np.clip(np.asarray(p, dtype=np.float64), _EPSILON, 1.0 - _EPSILON)
    return float(np.sum(y * np.log(q) + (1 - y) * np.log1p(-q)))


def fit_recalibration(y: np.ndarray, log_odds: np.ndarray) -> tuple[Recalibration, float]:
    """The maximum-likelihood line on the log-odds, and its likelihood-ratio p-value against
    slope 1, intercept 0 (chi-squared, 2 degrees of freedom)."""
    z = np.asarray(log_odds, dtype=np.float64)

    def negative(params: np.ndarray) -> float:
        return -log_likelihood(y, expit(params[0] * z + params[1]))

    fitted = minimize(
        negative,
        np.array([1.0, 0.0]),
        method="Nelder-Mead",
        options={"xatol": 1e-9, "fatol": 1e-9, "maxiter": 4000},
    )
    slope, intercept = (float(v) for v in fitted.x)
    statistic = max(0.0, 2.0 * (negative(np.array([1.0, 0.0])) - float(fitted.fun)))
    return Recalibration(slope, intercept), float(chi2.sf(statistic, df=2))


def reliability(y: np.ndarray, p: np.ndarray) -> list[dict[str, object]]:
    """Per fixed score bin: transactions, mean score, observed fraud rate and its 95 % interval."""
    edges = np.asarray(RELIABILITY_EDGES)
    bins = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    curve: list[dict[str, object]] = []
    for index in range(len(edges) - 1):
        members = bins == index
        n = int(members.sum())
        if not n:
            continue
        frauds = int(y[members].sum())
        curve.append(
            {
                "bin": [float(edges[index]), float(edges[index + 1])],
                "n": n,
                "mean_score": float(p[members].mean()),
                "fraud_rate": frauds / n,
                "fraud_rate_95": list(wilson_interval(frauds, n)),
                "frauds": frauds,
                "expected_frauds": float(p[members].sum()),
            }
        )
    return curve


def spiegelhalter_z(y: np.ndarray, p: np.ndarray) -> float:
    """Spiegelhalter's z for the Brier score: ~N(0, 1) when the scores are calibrated."""
    q = np.asarray(p, dtype=np.float64)
    spread = float(np.sum((1 - 2 * q) ** 2 * q * (1 - q)))
    return float(np.sum((y - q) * (1 - 2 * q)) / math.sqrt(spread)) if spread > 0 else 0.0


def calibration_error(y: np.ndarray, p: np.ndarray) -> float:
    """The expected calibration error over the reliability bins: per bin, |expected frauds -
    observed frauds|, summed and divided by the transactions. A size of miscalibration (a fraud
    rate), where Spiegelhalter's z is a test statistic that grows with the rows."""
    q = np.asarray(p, dtype=np.float64)
    labels = np.asarray(y, dtype=np.float64)
    if not q.size:
        return 0.0
    edges = np.asarray(RELIABILITY_EDGES)
    bins = np.clip(np.searchsorted(edges, q, side="right") - 1, 0, len(edges) - 2)
    gaps = np.bincount(bins, weights=q - labels, minlength=len(edges) - 1)
    return float(np.abs(gaps).sum() / q.size)


def measure(y: np.ndarray, p: np.ndarray) -> dict[str, object]:
    """Brier score, log loss, Spiegelhalter's z, expected against observed frauds, and the
    reliability curve of scores `p` for labels `y`."""
    y = np.asarray(y)
    p = np.asarray(p, dtype=np.float64)
    return {
        "n_transactions": int(y.size),
        "frauds": int(y.sum()),
        "expected_frauds": float(p.sum()),
        "brier": float(np.mean((p - y) ** 2)),
        "log_loss": -log_likelihood(y, p) / max(1, y.size),
        "spiegelhalter_z": spiegelhalter_z(y, p),
        "reliability": reliability(y, p),
    }


@dataclass(frozen=True, slots=True)
class CalibrationDecision:
    """The correction to fold into the model (IDENTITY when none) and the card's record of why."""

    recalibration: Recalibration
    record: dict[str, object]


RULE = (
    "Cox's test on the validation slice: logistic regression of the label on the model's "
    "log-odds; recalibrate when the likelihood ratio against slope 1, intercept 0 has p < "
    f"{CALIBRATION_ALPHA:g} (chi-squared, 2 df) and the corrected scores' log loss on the "
    "held-out test slice is not higher. The correction (Platt scaling on the log-odds) is "
    "folded into the trees: leaf values times the slope, base value times the slope plus the "
    "intercept."
)


def decide(
    validation: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]
) -> CalibrationDecision:
    """Whether to recalibrate, from (labels, uncorrected log-odds) of both slices."""
    (y_validation, z_validation), (y_test, z_test) = validation, test
    fitted, p_value = fit_recalibration(y_validation, z_validation)
    before = IDENTITY.apply(z_test)
    after = fitted.apply(z_test)
    needed = p_value < CALIBRATION_ALPHA
    held = -log_likelihood(y_test, after) <= -log_likelihood(y_test, before)
    applied = needed and held
    if not needed:
        why = f"not needed: p = {p_value:.3g} >= {CALIBRATION_ALPHA:g}"
    elif not held:
        why = "needed on validation, but the test slice's log loss would rise: not applied"
    else:
        why = f"applied: p = {p_value:.3g} < {CALIBRATION_ALPHA:g}, test log loss not higher"
    record: dict[str, object] = {
        "rule": RULE,
        "fitted_on": "validation",
        "fitted": {"slope": fitted.slope, "intercept": fitted.intercept},
        "p_value": p_value,
        "applied": applied,
        "decision": why,
        "test_log_loss": {
            "uncorrected": -log_likelihood(y_test, before) / max(1, y_test.size),
            "corrected": -log_likelihood(y_test, after) / max(1, y_test.size),
        },
        "uncorrected": {
            "validation": measure(y_validation, IDENTITY.apply(z_validation)),
            "test": measure(y_test, before),
        },
    }
    return CalibrationDecision(fitted if applied else IDENTITY, record)
