"""The drift check on simulated traffic: the real feature code, the shipped ONNX model and its histograms.

Each window is the last WINDOW of a DAYS-long simulation of N_CARDS cards: the
cards carry weeks of history, as in the baseline's reference slice (its decayed
counters need it), and the window holds ~1,200 transactions, above the default
MinSampleSize. The drift scenarios start exactly at the window's start.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simulator import SimulationConfig, encode_transaction, simulate
from streamscore.core.artifacts import SCORE
from streamscore.core.monitoring import PREDICTIONS, CountKey, Counts, prediction_counts, window_key
from streamscore.drift.baseline import DriftBaseline, load_baseline
from streamscore.drift.check import DriftCheckOutcome, DriftCheckPolicy, check_drift
from streamscore.drift.report import DRIFT_DETECTED, RETRAINING_REQUESTED
from streamscore.drift.stats import DriftThresholds
from streamscore.drift.window import DriftWindow
from streamscore.preprocess.contracts import Transaction
from streamscore.preprocess.features import replay_features
from streamscore.scoring.model import (
    DECISIONS,
    ScoringModel,
    bin_indexes,
    decide,
    feature_matrix,
    load_model,
    resolve_thresholds,
)
from support.fakes import MemoryDriftPorts, MemoryWindowReader

ARTIFACTS = Path(__file__).resolve().parents[3] / "models" / "artifacts"
N_CARDS = 400
DAYS = 30.0
WINDOW = timedelta(days=2)
BATCH = 250  # records per simulated score batch, each writing its own count items (a slot)
THRESHOLDS = DriftThresholds()  # the template's defaults
POLICY = DriftCheckPolicy(thresholds=THRESHOLDS, cooldown_hours=24)
FALSE_ALARM_SEEDS = range(10)
AMOUNT_FEATURES = {"amount_log", "amount_ratio_mean", "amount_zscore"}


@functools.cache
def shipped() -> tuple[ScoringModel, DriftBaseline]:
    return load_model(ARTIFACTS), load_baseline(ARTIFACTS)


@dataclass(frozen=True)
class SimulatedWindow:
    window: DriftWindow
    items: list[dict[str, Any]]
    transactions: int


@functools.cache
def simulated_window(
    scenario: str, seed: int, overrides: tuple[tuple[str, float], ...] = ()
) -> SimulatedWindow:
    """The window's prediction count items, as the score function would have written them."""
    model, _ = shipped()
    config = SimulationConfig(
        seed=seed,
        n_cards=N_CARDS,
        days=DAYS,
        scenario=scenario,  # type: ignore[arg-type]
        drift_start=(DAYS - WINDOW / timedelta(days=1)) / DAYS,
        **dict(overrides),  # type: ignore[arg-type]
    )
    batch = simulate(config)
    transactions = [
        Transaction.model_validate_json(encode_transaction(t)) for t in batch.transactions
    ]
    features = list(replay_features(transactions))
    end = datetime.fromtimestamp(config.start_epoch, UTC) + timedelta(days=DAYS)
    window = DriftWindow(end - WINDOW, end)
    inside = np.flatnonzero(
        (batch.timestamps >= window.start.timestamp()) & (batch.timestamps < end.timestamp())
    ).tolist()
    thresholds = resolve_thresholds(model.card.thresholds, None, None)
    totals: dict[CountKey, Counts] = {}
    for slot, first in enumerate(range(0, len(inside), BATCH)):
        rows = inside[first : first + BATCH]
        matrix, problems = feature_matrix([features[i] for i in rows], model.feature_names)
        assert not any(problems)
        scores = model.predict(matrix.astype(np.float32))
        # what score_batch adds per prediction: its decision and the bins of its features and score
        columns = [
            bin_indexes(matrix[:, j], model.edges[name])
            for j, name in enumerate(model.feature_names)
        ]
        columns.append(bin_indexes(scores, model.edges[SCORE]))
        bins = np.column_stack(columns).tolist()
        codes = decide(scores, thresholds).tolist()
        for row, row_bins, code in zip(rows, bins, codes, strict=True):
            hour = datetime.fromtimestamp(float(batch.timestamps[row]), UTC).strftime("%Y-%m-%dT%H")
            key = CountKey(PREDICTIONS, model.model_version, hour, "shardId-000", slot)
            totals.setdefault(key, Counts()).add(prediction_counts(DECISIONS[code], row_bins))
    items = [
        {
            "pk": key.pk,
            "sk": "COUNT",
            "kind": key.kind,
            "model_version": key.model_version,
            "hour": key.hour,
            "window_key": window_key(key.hour),
            "recorded_at": f"{key.hour}:00:00.000+00:00",
        }
        | counts.attributes()
        for key, counts in totals.items()
    ]
    return SimulatedWindow(window, items, len(inside))


def check(simulated: SimulatedWindow, sinks: MemoryDriftPorts, now: datetime) -> DriftCheckOutcome:
    """The check of the simulated window; `sinks` keeps what it wrote (its reader is replaced)."""
    _, baseline = shipped()
    sinks.reader = MemoryWindowReader(simulated.items)
    return check_drift(simulated.window, baseline, sinks.wired(), POLICY, now)


def psi_of(outcome: DriftCheckOutcome) -> dict[str, float]:
    report = outcome.report
    return {name: v.stats.psi for name, v in report.features.items()} | {
        SCORE: report.prediction.stats.psi
    }


# ---------------------------------------------------------------- no drift: the false-alarm check


@pytest.mark.parametrize("seed", FALSE_ALARM_SEEDS)
def test_baseline_traffic_is_ok_and_asks_for_nothing(seed: int) -> None:
    simulated = simulated_window("baseline", seed)
    sinks = MemoryDriftPorts(MemoryWindowReader())

    outcome = check(simulated, sinks, simulated.window.end)

    report = outcome.report
    assert report.sample()["n"] == simulated.transactions >= THRESHOLDS.min_samples
    assert report.status == "ok", {n: round(p, 3) for n, p in psi_of(outcome).items() if p > 0.05}
    assert max(psi_of(outcome).values()) < THRESHOLDS.psi_warn
    assert report.prediction.stats.js_distance < THRESHOLDS.js_drift
    assert outcome.trigger == "not_drift"
    assert sinks.events.entries == []
    assert report.volume()["transactions"] == simulated.transactions


# ---------------------------------------------------------------- the simulator's drift scenarios

# The scenarios at the strength each test uses, and the features they shift. At the simulator's
# defaults amount-inflation (x1.8) only reaches "warn", and new-fraud-pattern (0.6 % extra moto
# bursts) moves no distribution beyond noise: see test_default_strengths_below_the_drift_threshold.
SCENARIOS = [
    pytest.param("channel-shift", (), {"channel_ecom"}, id="channel-shift"),
    pytest.param(
        "amount-inflation",
        (("inflation_factor", 2.5),),
        AMOUNT_FEATURES,
        id="amount-inflation-x2.5",
    ),
    pytest.param(
        "new-fraud-pattern", (("new_pattern_rate", 0.25),), {"channel_moto"}, id="new-fraud-25pct"
    ),
]


@pytest.mark.parametrize(("scenario", "overrides", "shifted"), SCENARIOS)
def test_each_scenario_drifts_on_what_it_shifts_and_triggers_once(
    scenario: str, overrides: tuple[tuple[str, float], ...], shifted: set[str]
) -> None:
    simulated = simulated_window(scenario, 1, overrides)
    sinks = MemoryDriftPorts(MemoryWindowReader())
    now = simulated.window.end

    outcome = check(simulated, sinks, now)
    again = check(simulated, sinks, now + timedelta(hours=1))

    report = outcome.report
    drifted_features = {v.name for v in report.drifted} - {SCORE}
    assert report.status == "drift"
    assert drifted_features == shifted, {n: round(p, 3) for n, p in psi_of(outcome).items()}
    assert report.prediction.status == "drift"  # the model's scores moved too
    assert outcome.trigger == "sent"
    assert again.trigger == "sent" and again.sent == ()  # the same window: its trigger went out
    (detected,) = sinks.events.of_type(DRIFT_DETECTED)
    (requested,) = sinks.events.of_type(RETRAINING_REQUESTED)
    assert detected == requested
    assert {d["name"] for d in requested["drifted"]} == shifted | {SCORE}
    assert requested["report_uri"] == outcome.report_uri
    assert requested["sample"]["n"] == simulated.transactions


@pytest.mark.parametrize(
    ("scenario", "status", "warned"),
    [
        pytest.param("amount-inflation", "warn", AMOUNT_FEATURES, id="amount-inflation-x1.8"),
        pytest.param("new-fraud-pattern", "ok", set(), id="new-fraud-0.6pct"),
    ],
)
def test_default_strengths_below_the_drift_threshold(
    scenario: str, status: str, warned: set[str]
) -> None:
    simulated = simulated_window(scenario, 1)
    sinks = MemoryDriftPorts(MemoryWindowReader())

    outcome = check(simulated, sinks, simulated.window.end)

    report = outcome.report
    assert report.status == status, {n: round(p, 3) for n, p in psi_of(outcome).items()}
    assert {n for n, v in report.features.items() if v.status == "warn"} == warned
    assert outcome.trigger == "not_drift"
    assert sinks.events.entries == []
