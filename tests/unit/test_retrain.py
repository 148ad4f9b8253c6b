"""The retrain on simulated traffic (lifecycle/simulated.py): the waiting rule, a candidate that
learned a new fraud pattern passes the gate, the same window trains the same model again, and
without a decline sample the gate does not judge."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from lifecycle.retrain import (
    MAX_CALIBRATION_Z,
    RetrainPolicy,
    ServedModel,
    TooEarlyError,
    _verdict,
    calibration_check,
    plan,
    retrain,
)
from lifecycle.simulated import Logged, logged
from simulator import SimulationConfig, simulate
from training.dataset import build_dataset

ARTIFACTS = Path(__file__).resolve().parents[2] / "models" / "artifacts"
DAYS = 42
SHIFT_DAYS = 21  # the new pattern starts 21 days before the simulation ends
POLICY = RetrainPolicy(min_training_frauds=40)


def shipped() -> ServedModel:
    card = json.loads((ARTIFACTS / "model_card.json").read_text())
    return ServedModel(card["model_version"], (ARTIFACTS / "model.onnx").read_bytes(), card)


@pytest.fixture(scope="module")
def new_pattern() -> tuple[SimulationConfig, Logged]:
    config = SimulationConfig(
        seed=11,
        n_cards=1200,
        days=DAYS,
        scenario="new-fraud-pattern",
        drift_start=(DAYS - SHIFT_DAYS) / DAYS,
    )
    batch = simulate(config)
    return config, logged(batch, build_dataset(batch), shipped(), sample_share=0.2)


def simulated_end(config: SimulationConfig) -> datetime:
    return datetime.fromtimestamp(config.start_epoch + DAYS * 86_400, UTC)


def test_the_waiting_rule_refuses_until_post_trigger_traffic_matured() -> None:
    trigger = datetime(2026, 3, 20, tzinfo=UTC)
    ready = trigger + timedelta(days=POLICY.post_trigger_days + POLICY.maturity_days)

    with pytest.raises(TooEarlyError) as refusal:
        plan(ready - timedelta(hours=1), POLICY, trigger)
    window = plan(ready, POLICY, trigger)

    assert refusal.value.ready_at == ready
    assert "retrain at or after 2026-05-08" in str(refusal.value)
    assert window.end == trigger + timedelta(days=POLICY.post_trigger_days)
    assert window.start == window.end - timedelta(days=POLICY.window_days)
    assert window.evaluation_start == window.end - timedelta(days=POLICY.evaluation_days)


def test_a_candidate_that_learned_the_new_pattern_passes_and_retrains_the_same(
    new_pattern: tuple[SimulationConfig, Logged],
) -> None:
    config, log = new_pattern
    cutoff = simulated_end(config) + timedelta(days=POLICY.maturity_days)
    trigger = datetime.fromtimestamp(float(config.drift_epoch or 0), UTC)
    window = plan(cutoff, POLICY, trigger)

    first = retrain(log.rows, log.labels, shipped(), window, POLICY, sample_share=0.2)
    again = retrain(log.rows, log.labels, shipped(), window, POLICY, sample_share=0.2)

    assert first.verdict == "promote", first.report["why"]
    gate = first.report["gate"]
    assert gate["pr_auc_difference"]["interval"][0] > 0
    assert first.report["rows"]["left_out"].get("scored_after_cutoff", 0) == 0
    assert first.candidate is not None and again.candidate is not None
    assert again.candidate.model_version == first.candidate.model_version
    assert again.candidate.model_bytes == first.candidate.model_bytes


def test_without_a_decline_sample_the_gate_does_not_judge(
    new_pattern: tuple[SimulationConfig, Logged],
) -> None:
    config, log = new_pattern
    cutoff = simulated_end(config) + timedelta(days=POLICY.maturity_days)
    window = plan(cutoff, POLICY)

    result = retrain(log.rows, log.labels, shipped(), window, POLICY, sample_share=0.0)

    assert result.verdict == "declines_unobserved"
    assert result.candidate is None
    assert "DeclineSampleShare" in result.report["why"]


def _outcomes(truth: np.ndarray, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(truth.size) < truth).astype(np.int64)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_calibration_rule_is_paired_with_the_champion(seed: int) -> None:
    truth = np.random.default_rng(seed + 100).beta(0.4, 4.0, 40_000)  # P(fraud), ~9 % on average
    y = _outcomes(truth, seed)
    slightly_low = truth * 0.85  # a candidate a little under-confident, everywhere
    far_low = truth * 0.3  # a champion that missed the new frauds' rate

    calibrated = calibration_check(y, far_low, truth)
    better = calibration_check(y, far_low, slightly_low)
    worse = calibration_check(y, truth, slightly_low)

    assert calibrated["passed"] and calibrated["why"] == "calibrated"
    # 40,000 rows give the z-test the power to see a 15 % shortfall ...
    assert better["candidate_spiegelhalter_z"] > MAX_CALIBRATION_Z
    # ... and the champion's is worse by far: promoting improves the quality check's estimate
    assert better["candidate_calibration_error"] < better["champion_calibration_error"]
    assert better["passed"] and "not above the champion's" in better["why"]
    # the same candidate against a calibrated champion would make the estimate worse
    assert not worse["passed"] and "above the champion's" in worse["why"]


def test_a_calibration_failure_turns_a_promotion_into_a_rejection_and_nothing_else() -> None:
    promote = {"verdict": "promote", "why": "PR-AUC better beyond noise"}
    reject = {"verdict": "reject", "why": "PR-AUC difference's lower bound -0.03 is not above 0"}
    failed = {"passed": False, "why": "z 5.00, calibration error above the champion's"}
    passed = {"passed": True, "why": "calibrated"}

    assert _verdict(promote, passed) == {
        "verdict": "promote",
        "why": "PR-AUC better beyond noise; calibrated",
    }
    assert _verdict(promote, failed) == {"verdict": "reject", "why": failed["why"]}
    assert _verdict(reject, passed) == reject
    assert _verdict(reject, failed) == reject
