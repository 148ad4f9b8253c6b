"""Retraining from the stack's own data: plan the window, build the point-in-time training set,
train with `make model`'s code, judge the candidate against the champion, say why.

Time, from the cut-off C (now, by default) back:
- labels are trusted only for transactions at least `maturity_days` old: the data end at
  E = C - maturity (an approval without a chargeback by then counts as legitimate; younger
  approvals are not known yet);
- the window [E - window_days, E] splits by event time into training, validation (calibration,
  thresholds, the drift baseline's reference) and, last, the evaluation slice: the candidate
  has not seen it, and the champion was trained before it. The gate compares both there.

The waiting rule. A retrain asked for by a drift found at T learns the shift only from traffic
after T, and that traffic needs matured labels: the data must reach `post_trigger_days` past T,
so the earliest cut-off is T + post_trigger_days + maturity_days. Before it, `plan` refuses with
the date to come back. Defaults: chargebacks come 1 + Gamma(2, 7) days after the transaction in
the simulator (simulator/outcomes.py; median ~12 days, 95 % within ~34), so 35 days of maturity
leave ~5 % of reported frauds still to come; 14 post-trigger days give the evaluation slice (7
days) and a week of post-shift training rows. The quality check's LabelMaturityDays (60) is
stricter: it reports figures, where a few late chargebacks matter more than a week's delay.

Selective labels (the labels issue). The champion's declines never get a chargeback: left out,
the evaluation slice would hold only frauds the champion did not decline, and the candidate
would look better than it is. The decline sample (DeclineSampleShare) reviews a random share of
would-be declines instead; their labels stand, weighted by one over the share, for all declines
(inverse-propensity weighting), in training and in the gate. Without a sample, the gate does
not judge: the report says "declines_unobserved".
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from lifecycle.gate import GatePolicy, Slice, judge
from lifecycle.training_set import LoggedRow, TrainingSet, training_set
from streamscore.preprocess.features import FEATURE_NAMES
from streamscore.retraining.start import ready_at
from training import calibration, export
from training.dataset import Dataset
from training.pipeline import TrainingConfig, TrainingResult, fit

DAY = 86_400
MAX_CALIBRATION_Z = 3.0  # the candidate's Spiegelhalter z on the evaluation slice, either side


class TooEarlyError(Exception):
    """Too early: the data after the trigger have not matured enough."""

    def __init__(self, message: str, ready_at: datetime):
        super().__init__(message)
        self.ready_at = ready_at


@dataclass(frozen=True)
class RetrainPolicy:
    window_days: float = 28.0
    validation_days: float = 5.0
    evaluation_days: float = 7.0
    maturity_days: float = 35.0
    post_trigger_days: float = 14.0
    min_training_frauds: int = 50
    seed: int = 20260302
    gate: GatePolicy = field(default_factory=GatePolicy)

    def __post_init__(self) -> None:
        if not 0 < self.evaluation_days + self.validation_days < self.window_days:
            raise ValueError("validation and evaluation days must leave training days")
        if self.maturity_days < 0 or self.post_trigger_days < 0:
            raise ValueError("maturity and post-trigger days are not negative")


@dataclass(frozen=True)
class Window:
    cutoff: datetime
    start: datetime
    validation_start: datetime
    evaluation_start: datetime
    end: datetime  # cutoff - maturity: the newest event time used

    def as_dict(self) -> dict[str, str]:
        return {name: _iso(getattr(self, name)) for name in self.__dataclass_fields__}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def plan(cutoff: datetime, policy: RetrainPolicy, trigger: datetime | None = None) -> Window:
    """The window of a retrain at `cutoff`; TooEarlyError before the waiting rule allows one."""
    end = cutoff - timedelta(days=policy.maturity_days)
    if trigger is not None:
        ready = ready_at(trigger, policy.post_trigger_days, policy.maturity_days)
        if cutoff < ready:
            raise TooEarlyError(
                f"too early to learn the change found at {_iso(trigger)}: the training data "
                f"must reach {policy.post_trigger_days:g} days past it with labels "
                f"{policy.maturity_days:g} days old; retrain at or after {_iso(ready)}",
                ready,
            )
    evaluation_start = end - timedelta(days=policy.evaluation_days)
    return Window(
        cutoff=cutoff,
        start=end - timedelta(days=policy.window_days),
        validation_start=evaluation_start - timedelta(days=policy.validation_days),
        evaluation_start=evaluation_start,
        end=end,
    )


@dataclass(frozen=True)
class ServedModel:
    version: str
    model_bytes: bytes
    card: Mapping[str, Any]

    @property
    def decline_threshold(self) -> float:
        return float(self.card["thresholds"]["decline"])

    def scores(self, features: np.ndarray) -> np.ndarray:
        session = export.inference_session(self.model_bytes)
        probabilities = export.onnx_probabilities(session, features)
        return probabilities[:, export.POSITIVE_CLASS_INDEX].astype(np.float64)


@dataclass
class RetrainResult:
    report: dict[str, Any]
    candidate: TrainingResult | None  # None when nothing was trained

    @property
    def verdict(self) -> str:
        return str(self.report["verdict"])


def _dataset(data: TrainingSet, keep: np.ndarray) -> Dataset:
    return Dataset(
        features=data.features[keep],
        is_fraud=data.labels[keep],
        timestamps=data.event_times[keep],
        patterns=np.full(int(keep.sum()), "unknown"),
        card_ages=data.card_ages[keep],
        weights=data.weights[keep],
    )


def _in_window(rows: Sequence[LoggedRow], window: Window) -> list[LoggedRow]:
    return [r for r in rows if window.start <= r.event_time <= window.end]


def _declines(rows: Sequence[LoggedRow], window: Window) -> Counter[str]:
    """The evaluation slice's declines: taken, or reviewed instead by the decline sample."""
    counts: Counter[str] = Counter()
    for row in rows:
        if window.evaluation_start <= row.event_time <= window.end and row.decision != "approve":
            if row.decision == "decline":
                counts["declined"] += 1
            elif row.guard == "decline_sample":
                counts["sampled"] += 1
    return counts


def retrain(
    rows: Sequence[LoggedRow],
    labels: Mapping[str, Mapping[str, Any]],
    champion: ServedModel,
    window: Window,
    policy: RetrainPolicy,
    sample_share: float = 0.0,
) -> RetrainResult:
    """Train a candidate on the window's rows and judge it against `champion` (module docstring)."""
    logged = _in_window(rows, window)
    data = training_set(
        logged, labels, window.cutoff, FEATURE_NAMES, policy.maturity_days, sample_share
    )
    report: dict[str, Any] = {
        "window": window.as_dict(),
        "policy": {
            "window_days": policy.window_days,
            "validation_days": policy.validation_days,
            "evaluation_days": policy.evaluation_days,
            "maturity_days": policy.maturity_days,
            "post_trigger_days": policy.post_trigger_days,
            "min_training_frauds": policy.min_training_frauds,
            "seed": policy.seed,
            "gate": {
                "min_frauds": policy.gate.min_frauds,
                "recall_tolerance": policy.gate.recall_tolerance,
                "draws": policy.gate.draws,
                "confidence": policy.gate.confidence,
                "max_calibration_z": MAX_CALIBRATION_Z,
            },
        },
        "champion": champion.version,
        "decline_sample_share": sample_share,
        "rows": {
            "logged_in_window": len(logged),
            "kept": int(data.labels.size),
            "kept_as": dict(sorted(data.kept_as.items())),
            "left_out": dict(sorted(data.left_out.items())),
        },
    }
    times = data.event_times
    bounds = [
        window.start.timestamp(),
        window.validation_start.timestamp(),
        window.evaluation_start.timestamp(),
    ]
    slices = {
        "training": (times >= bounds[0]) & (times < bounds[1]),
        "validation": (times >= bounds[1]) & (times < bounds[2]),
        "evaluation": times >= bounds[2],
    }
    report["slices"] = {
        name: {"rows": int(mask.sum()), "frauds": int(data.labels[mask].sum())}
        for name, mask in slices.items()
    }
    declines = _declines(logged, window)
    report["evaluation_declines"] = dict(declines)
    short = _shortage(report["slices"], policy)
    if short:
        return RetrainResult(report | {"verdict": "insufficient_data", "why": short}, None)
    unobserved = _unobserved(declines, sample_share)
    if unobserved:
        return RetrainResult(report | {"verdict": "declines_unobserved", "why": unobserved}, None)
    config = TrainingConfig(seed=policy.seed)
    source = {"feature_log": {"window": window.as_dict(), "champion": champion.version}}
    candidate = fit(_dataset(data, np.ones(times.size, dtype=bool)), bounds, config, source)
    evaluation = slices["evaluation"]
    features = data.features[evaluation]
    y, w = data.labels[evaluation], data.weights[evaluation]
    trained = ServedModel(candidate.model_version, candidate.model_bytes, candidate.model_card)
    champion_scores = champion.scores(features)
    challenger_scores = trained.scores(features)
    thresholds = (champion.decline_threshold, trained.decline_threshold)
    verdict = judge(
        Slice.of(y, champion_scores, challenger_scores, w), thresholds, policy.gate, policy.seed
    )
    checked = calibration_check(y, champion_scores, challenger_scores)
    report |= {
        "candidate": candidate.model_version,
        "thresholds": {"champion_decline": thresholds[0], "candidate_decline": thresholds[1]},
        "gate": verdict,
        "parity": candidate.model_card["parity"],
        "calibration": checked,
        "curves": {
            "champion": _curve(y, champion_scores, w),
            "candidate": _curve(y, challenger_scores, w),
        },
    }
    report |= _verdict(verdict, checked)
    return RetrainResult(report, candidate)


def _shortage(slices: Mapping[str, Mapping[str, int]], policy: RetrainPolicy) -> str | None:
    training = slices["training"]["frauds"]
    if training < policy.min_training_frauds:
        return f"{training} frauds to train on, fewer than {policy.min_training_frauds}"
    for name in ("validation", "evaluation"):
        if slices[name]["frauds"] == 0:
            return f"no fraud in the {name} slice"
    return None


def _unobserved(declines: Counter[str], sample_share: float) -> str | None:
    if declines["declined"] and (sample_share <= 0 or not declines["sampled"]):
        return (
            f"the champion declined {declines['declined']} transactions of the evaluation slice "
            "and none was reviewed instead (DeclineSampleShare 0): their outcomes are unknown, "
            "and a candidate would be judged only on the frauds the champion let through; set "
            "DeclineSampleShare (e.g. 0.05) and retrain once its labels matured"
        )
    return None


def calibration_check(
    y: np.ndarray, champion_scores: np.ndarray, challenger_scores: np.ndarray
) -> dict[str, Any]:
    """The calibration rule of a promotion, paired like the gate: on the evaluation slice the
    candidate must be calibrated (Spiegelhalter's |z| at most MAX_CALIBRATION_Z) or, failing
    that, no more miscalibrated than the champion it would replace (calibration error, a fraud
    rate, not above the champion's on the same rows).

    The quality check estimates the frauds it approved as the sum of the scores (drift/quality.py),
    so a promotion must not make that estimate worse. A z-test alone cannot say so: its power
    grows with the slice, and after a drift the champion is usually far worse calibrated than a
    candidate trained on the new traffic (a full closed loop measured z 5.09 for a candidate with
    Brier 0.020 against the champion's 0.137). Unweighted: which declines are reviewed depends on
    the champion's score only, not on the outcome, so calibration holds on the reviewed rows.
    """
    figures: dict[str, Any] = {}
    for name, scores in (("candidate", challenger_scores), ("champion", champion_scores)):
        measured = calibration.measure(y, scores)
        figures[f"{name}_spiegelhalter_z"] = measured["spiegelhalter_z"]
        figures[f"{name}_brier"] = measured["brier"]
        figures[f"{name}_calibration_error"] = calibration.calibration_error(y, scores)
    z = float(figures["candidate_spiegelhalter_z"])
    error, champion_error = (
        figures["candidate_calibration_error"],
        figures["champion_calibration_error"],
    )
    if math.isfinite(z) and abs(z) <= MAX_CALIBRATION_Z:
        figures["passed"], figures["why"] = True, "calibrated"
    elif math.isfinite(z) and error <= champion_error:
        figures["passed"] = True
        figures["why"] = (
            f"Spiegelhalter z {z:.2f} beyond ±{MAX_CALIBRATION_Z:g}, but calibration error "
            f"{error:.4f} not above the champion's {champion_error:.4f}"
        )
    else:
        figures["passed"] = False
        figures["why"] = (
            f"the candidate's Spiegelhalter z on the evaluation slice is {z:.2f} and its "
            f"calibration error {error:.4f} is above the champion's {champion_error:.4f}"
        )
    return figures


def _verdict(gate: Mapping[str, Any], checked: Mapping[str, Any]) -> dict[str, str]:
    if gate["verdict"] != "promote":
        return {"verdict": str(gate["verdict"]), "why": str(gate["why"])}
    if not checked["passed"]:
        return {"verdict": "reject", "why": str(checked["why"])}
    return {"verdict": "promote", "why": f"{gate['why']}; {checked['why']}"}


def _curve(y: np.ndarray, scores: np.ndarray, w: np.ndarray, points: int = 50) -> dict[str, list]:
    """Precision and recall at `points` score quantiles (weighted), for the report's picture."""
    cuts = np.unique(np.quantile(scores, np.linspace(0.5, 1.0, points)))
    total = float(np.sum(w * y)) or 1.0
    precision, recall = [], []
    for cut in cuts:
        flagged = scores >= cut
        hit = float(np.sum(w * y * flagged))
        precision.append(hit / max(float(np.sum(w * flagged)), 1e-12))
        recall.append(hit / total)
    return {"threshold": cuts.tolist(), "precision": precision, "recall": recall}
