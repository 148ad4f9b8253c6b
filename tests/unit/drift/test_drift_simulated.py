"""The drift check on simulated traffic: the real feature code, the shipped ONNX model and its histograms.

Each window is the last WINDOW of a DAYS-long simulation of N_CARDS cards: the
cards carry weeks of history, as in the baseline's reference slice (its decayed
counters need it), and the window holds ~1,200 transactions, above the default
MinSampleSize. The drift scenarios start exactly at the window's start.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bench.drift_warmup import hourly_reports, simulated_items, simulation
from simulator import SimulationConfig, simulate
from streamscore.core.artifacts import SCORE
from streamscore.drift.baseline import DriftBaseline, load_baseline
from streamscore.drift.check import DriftCheckOutcome, DriftCheckPolicy, check_drift
from streamscore.drift.report import (
    DRIFT_DETECTED,
    RETRAINING_REQUESTED,
)
from streamscore.drift.stats import DriftThresholds
from streamscore.drift.window import DriftWindow
from streamscore.scoring.model import (
    ScoringModel,
    load_model,
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
    config = SimulationConfig(
        seed=seed,
        n_cards=N_CARDS,
        days=DAYS,
        scenario=scenario,  # type: ignore[arg-type]
        drift_start=(DAYS - WINDOW / timedelta(days=1)) / DAYS,
        **dict(overrides),  # type: ignore[arg-type]
    )
    end = datetime.fromtimestamp(config.start_epoch, UTC) + timedelta(days=DAYS)
    window = DriftWindow(end - WINDOW, end)
    items, transactions = simulated_items(simulate(config).transactions, window.start, end)
    return SimulatedWindow(window, items, transactions)


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


# ---------------------------------------------------------------- a freshly deployed stack
# Card state starts empty: every card is new to the stack, so its first days look nothing like
# the baseline's cards with weeks of history. The baseline's card-age strata compare each
# window with reference cards of the same age (DriftBaseline.history).

FRESH_CARDS = 1000  # ~1,500 transactions a day: a day's window holds three MinSampleSizes
FRESH_SEEDS = range(10)
CARD_HISTORY_FEATURES = {
    "is_foreign",
    "is_first_seen",
    "seconds_since_last_log",
    "txn_count_1h",
    "txn_count_24h",
    "small_ecom_count_1h",
    "foreign_count_24h",
    "amount_ratio_mean",
    "amount_zscore",
    "same_merchant",
}


@functools.cache
def fresh_stack(
    scenario: str, seed: int, days: float, drift_day: float = 0.0
) -> tuple[list[dict[str, Any]], datetime]:
    """Count items of `days` of traffic on a fresh stack (the scenario from `drift_day` on)."""
    transactions, start = simulation(seed, FRESH_CARDS, days, scenario, drift_day)
    items, _ = simulated_items(transactions, start, start + timedelta(days=days))
    return items, start


@pytest.mark.parametrize("seed", FRESH_SEEDS)
def test_a_fresh_stack_fed_three_days_of_baseline_traffic_requests_no_retraining(
    seed: int,
) -> None:
    _, baseline = shipped()
    items, start = fresh_stack("baseline", seed, days=3.0)

    reports = hourly_reports(items, start, 72, baseline)

    statuses = [r.status for r in reports]
    judged = [h for h, s in enumerate(statuses, 1) if s != "insufficient_data"]
    assert "drift" not in statuses, {
        h: r.headline()["drifted"] for h, r in enumerate(reports, 1) if r.status == "drift"
    }
    # verdicts from the first hour with MinSampleSize predictions, not after a silent warm-up
    first = next(h for h, r in enumerate(reports, 1) if r.sample()["n"] >= THRESHOLDS.min_samples)
    assert judged[0] == first < 24
    assert judged == list(range(first, 73))
    assert reports[23].warm_up()["status"] == "fresh"  # type: ignore[index]


def test_without_card_age_strata_the_same_fresh_stack_is_called_drift() -> None:
    # the control: the flat reference (cards with weeks of history) on the fresh stack's day 3
    _, baseline = shipped()
    flat = dataclasses.replace(baseline, history=None)
    items, start = fresh_stack("baseline", 0, days=3.0)

    reports = hourly_reports(items, start, 72, flat)

    assert reports[-1].status == "drift"
    # what drifts is what depends on the card's history, nothing the traffic itself changed
    assert {v.name for v in reports[-1].drifted} - {SCORE} <= CARD_HISTORY_FEATURES


@pytest.mark.parametrize("seed", range(3))
def test_a_channel_shift_from_day_4_of_a_fresh_stack_is_detected_by_day_6(seed: int) -> None:
    _, baseline = shipped()
    items, start = fresh_stack("channel-shift", seed, days=6.0, drift_day=3.0)

    reports = hourly_reports(items, start, 144, baseline)

    drifted = [h for h, r in enumerate(reports, 1) if r.status == "drift"]
    ecom = [h for h, r in enumerate(reports, 1) if "channel_ecom" in {v.name for v in r.drifted}]
    assert drifted, "never detected"
    assert 72 < drifted[0] <= 144  # nothing before the shift starts (hour 72), found by day 6
    assert ecom and ecom[0] <= 144  # and the feature it shifts is named by day 6
    assert all(r.status == "drift" for r in reports[drifted[0] - 1 :])
