"""The quality check's figures on simulated traffic, seed by seed: what the alarm threshold is
chosen from, and what the estimate's error is.

`python -m bench.quality [--seeds N]` writes bench/results/quality.json and prints a table.

Per scenario and seed: the simulator's default traffic (2,000 cards, 14 days; scenarios drift
from the middle), its features replayed as preprocess computes them (models/training), the
shipped model's scores and decisions at its card's thresholds, the labels production would see
(simulator/outcomes.py: reviews decided, approved frauds charged back, 10 % never, declines
never), and over the second week (a 7-day window, as the quality check reads) the same counting
and figures the pipeline uses (core.monitoring, core.quality, drift/quality.py). Every label has
come back here (the window is mature); the pipeline is not run, so this measures the figures,
not the functions.

**Detection delay** (`detection`): the same traffic over 28 days (the scenario from day 14),
and the quality check replayed once a simulated day, as its schedule runs it: the window of
`QualityWindowDays` (7) of event days that ended `LabelMaturityDays` before the check, with
only the labels whose `labelled_at` is before the check. For each maturity, the first check
after the shift that asks for retraining (recall at decline below 0.8 with at least 30 frauds
seen), and on baseline traffic every check that would have (false alarms). A label that has not
come back yet can only raise recall at decline (a chargeback missing is a fraud not seen), so a
shorter maturity trades detection time for sensitivity, not for false alarms.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from bench import ROOT
from simulator import Scenario, SimulationConfig, simulate
from simulator.outcomes import OutcomeConfig, production_labels
from streamscore.core.monitoring import Counts, prediction_counts
from streamscore.core.quality import in_decline_sample, label_attributes
from streamscore.drift.quality import QualityCounts, estimated, realized
from streamscore.preprocess.features import FEATURE_NAMES
from streamscore.scoring.model import DECISIONS, ScoringModel, decide, load_model
from training.dataset import build_dataset

RESULTS = ROOT / "bench" / "results" / "quality.json"
SCENARIOS: tuple[Scenario, ...] = (
    "baseline",
    "new-fraud-pattern",
    "channel-shift",
    "amount-inflation",
)
FIGURES = ("recall_at_decline", "recall_at_review", "approval_fraud_ratio", "pr_auc")


DAY = 86_400
RECALL_THRESHOLD = 0.8  # the template's QualityRecallThreshold
MIN_FRAUDS = 30  # QualityMinFrauds
WINDOW_DAYS = 7  # QualityWindowDays
# days replayed: QualityEarlyDays (14) and LabelMaturityDays (60) are the defaults
MATURITIES = (7, 14, 21, 30, 60)
DETECTION_DAYS = 28.0
SAMPLE = 0.2  # DeclineSampleShare compared with none (its most: 2,000 cards decline ~50 a week)


@dataclass(frozen=True)
class Scored:
    """One simulated run through the shipped model: per prediction its event time, PRED counts
    and, when production would see a label, the label's time and QUAL attributes."""

    start: float  # epoch seconds of the first simulated day
    shift: int  # the day the scenario starts on (whole days after `start`)
    times: np.ndarray
    days: list[Counts]  # PRED counts per simulated day
    labels: list[tuple[int, float, tuple[str, ...]]]  # (event day, labelled_at, attributes)
    # per day, the simulator's truth of the model's declines: frauds, declines, frauds declined
    truth: list[Counter[str]]


def scored_run(model: ScoringModel, config: SimulationConfig, sample: float = 0.0) -> Scored:
    """`sample`: DeclineSampleShare, the share of would-be declines reviewed instead."""
    batch = simulate(config)
    dataset = build_dataset(batch)
    columns = [FEATURE_NAMES.index(name) for name in model.feature_names]
    scores = model.predict(dataset.features[:, columns].astype(np.float32)).tolist()
    codes = decide(np.asarray(scores), model.card.thresholds).tolist()
    predictions = [
        {
            "transaction_id": label.transaction_id,
            "decision": DECISIONS[code],
            "event_time": txn["event_time"],
        }
        for label, code, txn in zip(batch.labels, codes, batch.transactions, strict=True)
    ]
    reviewed = set()
    for prediction in predictions:  # as scoring/batch.py decides
        if prediction["decision"] == "decline" and in_decline_sample(
            prediction["transaction_id"], sample
        ):
            prediction["decision"] = "review"
            reviewed.add(prediction["transaction_id"])
    truth = {label.transaction_id: label for label in batch.labels}
    outcomes = production_labels(predictions, truth, OutcomeConfig(seed=config.seed))
    by_id = {x["transaction_id"]: x for x in outcomes.labels}
    days = [Counts() for _ in range(int(np.ceil(config.days)) + 1)]
    truths: list[Counter[str]] = [Counter() for _ in days]
    labels = []
    for prediction, score, code, moment in zip(
        predictions, scores, codes, dataset.timestamps.tolist(), strict=True
    ):
        day = int((moment - config.start_epoch) // DAY)
        txn = prediction["transaction_id"]
        sampled = txn in reviewed
        days[day].add(
            prediction_counts(prediction["decision"], [], score=score, reviewed_decline=sampled)
        )
        declined, fraud_ = DECISIONS[code] == "decline", truth[txn].is_fraud
        truths[day].update(
            {"frauds": fraud_, "declines": declined, "frauds_declined": fraud_ and declined}
        )
        label = by_id.get(txn)
        if label is not None:
            fraud = label["label"] == "fraud"
            attributes = label_attributes(fraud, prediction["decision"], score, sampled)
            at = datetime.fromisoformat(label["labelled_at"]).timestamp()
            labels.append((day, at, attributes))
    drift = config.drift_epoch or config.start_epoch
    return Scored(
        start=float(config.start_epoch),
        shift=(drift - config.start_epoch) // DAY,
        times=dataset.timestamps.astype(np.float64),
        days=days,
        labels=labels,
        truth=truths,
    )


def window_figures(run: Scored, first: int, end: int, known_by: float) -> dict[str, Any]:
    """Realized and estimated figures of the predictions of days [first, end) with the labels
    known by `known_by` (epoch seconds)."""
    predicted, labelled = Counts(), Counts()
    for daily in run.days[max(0, first) : max(0, end)]:
        predicted.add(daily)
    quality: Counter[str] = Counter()
    for day, at, attributes in run.labels:
        if first <= day < end and at <= known_by:
            quality.update(attributes)
    labelled.quality = quality
    counts = QualityCounts.of(predicted, labelled)
    truth: Counter[str] = Counter()
    for daily_truth in run.truth[max(0, first) : max(0, end)]:
        truth.update(daily_truth)
    return {
        "predictions": predicted.n,
        "realized": realized(counts),
        "estimated": estimated(counts),
        "truth": {
            "recall_at_decline": truth["frauds_declined"] / max(1, truth["frauds"]),
            "precision_at_decline": truth["frauds_declined"] / max(1, truth["declines"]),
        },
    }


def one_run(
    model: ScoringModel, scenario: Scenario, seed: int, sample: float = 0.0
) -> dict[str, Any]:
    """The second week of the default traffic (days 7-13), every label back."""
    run = scored_run(model, SimulationConfig(seed=seed, scenario=scenario), sample)
    return {"seed": seed} | window_figures(run, len(run.days) // 2, len(run.days), np.inf)


def _alarms(figures: dict[str, Any]) -> bool:
    real = figures["realized"]
    return bool(
        real["frauds_seen"] >= MIN_FRAUDS
        and real["recall_at_decline"] is not None
        and real["recall_at_decline"] < RECALL_THRESHOLD
    )


def check_days(run: Scored, maturity: int) -> list[dict[str, Any]]:
    """The daily checks whose window ends after the shift and is within the traffic, in order:
    days since the shift, and whether the check asks for retraining."""
    checks = []
    last = len(run.days)
    day = 1
    while True:
        end = run.shift + day - maturity  # the window's end, in simulated days
        if end - WINDOW_DAYS >= last:
            break
        if end > run.shift:
            check = run.start + (run.shift + day) * DAY
            figures = window_figures(run, end - WINDOW_DAYS, end, check)
            checks.append(
                {
                    "day": day,
                    "alarm": _alarms(figures),
                    "recall_at_decline": figures["realized"]["recall_at_decline"],
                    "frauds_seen": figures["realized"]["frauds_seen"],
                }
            )
        day += 1
    return checks


def detection(model: ScoringModel, seeds: int) -> dict[str, Any]:
    """Per maturity: days from the shift to the first retraining request on new-fraud-pattern
    traffic, and false alarms on baseline traffic, seed by seed (see the module docstring)."""
    out: dict[str, Any] = {
        "days": DETECTION_DAYS,
        "window_days": WINDOW_DAYS,
        "recall_threshold": RECALL_THRESHOLD,
        "min_frauds": MIN_FRAUDS,
    }
    runs = {
        scenario: [
            scored_run(model, SimulationConfig(seed=seed, scenario=scenario, days=DETECTION_DAYS))
            for seed in range(1, seeds + 1)
        ]
        for scenario in ("baseline", "new-fraud-pattern")
    }
    for maturity in MATURITIES:
        delays: list[int | None] = []
        for run in runs["new-fraud-pattern"]:
            alarmed = [c["day"] for c in check_days(run, maturity) if c["alarm"]]
            delays.append(alarmed[0] if alarmed else None)
        false_alarms = []
        checks = 0
        for run in runs["baseline"]:
            days = check_days(run, maturity)
            checks += len(days)
            false_alarms.append(sum(c["alarm"] for c in days))
        found = sorted(d for d in delays if d is not None)
        out[f"maturity_{maturity}"] = {
            "detection_days": delays,
            "detected": len(found),
            "median_days": found[len(found) // 2] if found else None,
            "min_days": found[0] if found else None,
            "max_days": found[-1] if found else None,
            "baseline_checks": checks,
            "baseline_false_alarms": false_alarms,
        }
    return out


def measure(seeds: int) -> dict[str, Any]:
    model = load_model(ROOT / "models" / "artifacts", 1, 1)
    results: dict[str, Any] = {"seeds": seeds, "model_version": model.model_version}
    for scenario in SCENARIOS:
        runs = [one_run(model, scenario, seed) for seed in range(1, seeds + 1)]
        summary = {}
        for name in FIGURES:
            values = sorted(r["realized"][name] for r in runs if r["realized"][name] is not None)
            summary[name] = {
                "min": values[0],
                "median": values[len(values) // 2],
                "max": values[-1],
            }
        errors = [
            r["realized"]["recall_at_review"] - r["estimated"]["recall_at_review"] for r in runs
        ]
        summary["recall_at_review_minus_estimate"] = {
            "mean": float(np.mean(errors)),
            "min": min(errors),
            "max": max(errors),
        }
        sampled = [one_run(model, scenario, seed, SAMPLE) for seed in range(1, seeds + 1)]
        summary["decline_sample"] = decline_sample_summary(runs, sampled)
        results[scenario] = {"summary": summary, "runs": runs, "sampled_runs": sampled}
    results["detection"] = detection(model, seeds)
    return results


def _spread(values: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "min": min(values), "max": max(values)}


def decline_sample_summary(
    runs: list[dict[str, Any]], sampled: list[dict[str, Any]]
) -> dict[str, Any]:
    """Recall and precision at decline against the simulator's truth: from the declines' scores
    (no sample), and with SAMPLE of them reviewed instead; and what the sample cost."""
    return {
        "share": SAMPLE,
        "recall_at_decline_minus_truth": {
            "scores": _spread(
                [r["realized"]["recall_at_decline"] - r["truth"]["recall_at_decline"] for r in runs]
            ),
            "sample": _spread(
                [
                    r["realized"]["recall_at_decline"] - r["truth"]["recall_at_decline"]
                    for r in sampled
                ]
            ),
        },
        "precision_at_decline_minus_truth": {
            "scores": _spread(
                [
                    r["estimated"]["precision_at_decline"] - r["truth"]["precision_at_decline"]
                    for r in runs
                ]
            ),
            "sample": _spread(
                [
                    r["realized"]["decline_sample"]["precision_at_decline"]
                    - r["truth"]["precision_at_decline"]
                    for r in sampled
                ]
            ),
        },
        "source": sorted({r["realized"]["declined_frauds_from"] for r in sampled}),
        "reviewed_per_10k": _spread(
            [1e4 * r["realized"]["decline_sample"]["reviewed"] / r["predictions"] for r in sampled]
        ),
        "reviewed_frauds_share": _spread([r["truth"]["precision_at_decline"] for r in sampled]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    results = measure(args.seeds)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    for scenario in SCENARIOS:
        summary = results[scenario]["summary"]
        cells = [
            f"{name} {s['min']:.3f}-{s['max']:.3f} (median {s['median']:.3f})"
            for name, s in summary.items()
            if name in FIGURES
        ]
        error = summary["recall_at_review_minus_estimate"]
        print(f"{scenario:<18} " + "; ".join(cells))
        print(
            f"{'':<18} recall at review minus its estimate: mean {error['mean']:+.3f} "
            f"[{error['min']:+.3f}, {error['max']:+.3f}]"
        )
    for scenario in SCENARIOS:
        sample = results[scenario]["summary"]["decline_sample"]
        recall, precision = (
            sample["recall_at_decline_minus_truth"],
            sample["precision_at_decline_minus_truth"],
        )
        print(
            f"{scenario:<18} recall at decline minus truth: scores {recall['scores']['mean']:+.3f} "
            f"[{recall['scores']['min']:+.3f}, {recall['scores']['max']:+.3f}], {SAMPLE:.0%} "
            f"sample {recall['sample']['mean']:+.3f} [{recall['sample']['min']:+.3f}, "
            f"{recall['sample']['max']:+.3f}]; precision at decline: scores "
            f"{precision['scores']['mean']:+.3f}, sample {precision['sample']['mean']:+.3f} "
            f"[{precision['sample']['min']:+.3f}, {precision['sample']['max']:+.3f}]; "
            f"{sample['reviewed_per_10k']['mean']:.1f} more reviews per 10,000"
        )
    found = results["detection"]
    for maturity in MATURITIES:
        row = found[f"maturity_{maturity}"]
        print(
            f"maturity {maturity:>2} d: new-fraud-pattern detected in {row['detected']}/"
            f"{args.seeds} seeds, {row['min_days']}-{row['max_days']} days after the shift "
            f"(median {row['median_days']}); baseline: "
            f"{sum(row['baseline_false_alarms'])} alarms in {row['baseline_checks']} checks"
        )
    print(f"written: {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
