"""The retrain on simulated traffic (lifecycle/simulated.py): the waiting rule, a candidate that
learned a new fraud pattern passes the gate, the same window trains the same model again, and
without a decline sample the gate does not judge."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lifecycle.retrain import RetrainPolicy, ServedModel, TooEarlyError, plan, retrain
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
