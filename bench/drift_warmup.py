"""Drift on a fresh stack: false alarms and detection, hour by hour, on the simulator.

`python -m bench.drift_warmup [--seeds N] [--cards N]` writes bench/results/drift_warmup.json
and prints a table (the README's drift table quotes it).

Each scenario simulates traffic on a stack whose card state starts empty (a fresh deployment),
scores it with the shipped model and counts it exactly as the score function does (decision,
bins, card-age stratum: `simulated_items`), then runs the scheduled check's report at the end
of every hour over the day before it (`hourly_reports`). Each is judged twice: against the
baseline's card-age strata (what the drift check does) and against the flat reference (the
baseline without strata, what it did before), so the difference is measured, not assumed.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from bench import ROOT
from bench.common import machine, now_iso, progress, write_json
from simulator import SimulationConfig, encode_transaction, simulate
from streamscore.core.artifacts import SCORE
from streamscore.core.monitoring import PREDICTIONS, CountKey, Counts, prediction_counts, window_key
from streamscore.drift.baseline import DriftBaseline, load_baseline
from streamscore.drift.report import DriftReport, build_report
from streamscore.drift.stats import DriftThresholds
from streamscore.drift.totals import sum_items
from streamscore.drift.window import DriftWindow
from streamscore.preprocess.contracts import Transaction
from streamscore.preprocess.features import replay
from streamscore.scoring.model import (
    DECISIONS,
    ScoringModel,
    bin_indexes,
    decide,
    feature_matrix,
    history_strata,
    load_model,
    resolve_thresholds,
)

RESULTS = ROOT / "bench" / "results" / "drift_warmup.json"
ARTIFACTS = ROOT / "models" / "artifacts"
THRESHOLDS = DriftThresholds()  # the template's defaults
BATCH = 250  # predictions per simulated score batch (each writes its own count items)
HOUR = timedelta(hours=1)


@functools.cache
def shipped() -> tuple[ScoringModel, DriftBaseline]:
    return load_model(ARTIFACTS), load_baseline(ARTIFACTS)


def simulated_items(
    transactions: Sequence[dict[str, Any]], start: datetime, end: datetime
) -> tuple[list[dict[str, Any]], int]:
    """Prediction count items of the transactions (event-time order) in [start, end), as the
    score function writes them: decision, bins of features and score, card-age stratum.

    Card state starts empty at the first transaction, as on a freshly deployed stack.
    """
    model, _ = shipped()
    parsed = [Transaction.model_validate_json(encode_transaction(t)) for t in transactions]
    replayed = list(replay(parsed))
    times = np.array([t.event_time.timestamp() for t in parsed])
    inside = np.flatnonzero((times >= start.timestamp()) & (times < end.timestamp())).tolist()
    thresholds = resolve_thresholds(model.card.thresholds, None, None)
    totals: dict[CountKey, Counts] = {}
    for slot, first in enumerate(range(0, len(inside), BATCH)):
        rows = inside[first : first + BATCH]
        matrix, problems = feature_matrix([replayed[i][0] for i in rows], model.feature_names)
        if any(problems):
            raise ValueError("the simulator produced a row the score function refuses")
        scores = model.predict(matrix.astype(np.float32))
        columns = [
            bin_indexes(matrix[:, j], model.edges[name])
            for j, name in enumerate(model.feature_names)
        ]
        columns.append(bin_indexes(scores, model.edges[SCORE]))
        bins = np.column_stack(columns).tolist()
        strata: list[int | None] = [None] * len(rows)
        if model.history_bounds is not None:
            ages = np.array([replayed[i][1] for i in rows])
            strata = history_strata(ages, model.history_bounds).tolist()
        codes = decide(scores, thresholds).tolist()
        for row, row_bins, code, stratum in zip(rows, bins, codes, strata, strict=True):
            hour = datetime.fromtimestamp(float(times[row]), UTC).strftime("%Y-%m-%dT%H")
            key = CountKey(PREDICTIONS, model.model_version, hour, "shardId-000", slot)
            counts = prediction_counts(DECISIONS[code], row_bins, stratum)
            totals.setdefault(key, Counts()).add(counts)
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
    return items, len(inside)


def hourly_reports(
    items: list[dict[str, Any]], start: datetime, hours: int, baseline: DriftBaseline
) -> list[DriftReport]:
    """The scheduled check's report at the end of each of `hours` hours: the day before it."""
    reports = []
    for hour in range(1, hours + 1):
        end = start + hour * HOUR
        window = DriftWindow(end - timedelta(days=1), end)
        reports.append(
            build_report(window, baseline, sum_items(items, window, baseline), THRESHOLDS, end)
        )
    return reports


def simulation(
    seed: int,
    cards: int,
    days: float,
    scenario: str = "baseline",
    drift_day: float = 0.0,
    **overrides: float,
) -> tuple[list[dict[str, Any]], datetime]:
    config = SimulationConfig(
        seed=seed,
        n_cards=cards,
        days=days,
        scenario=scenario,  # type: ignore[arg-type]
        drift_start=drift_day / days,
        **overrides,  # type: ignore[arg-type]
    )
    batch = simulate(config)
    return list(batch.transactions), datetime.fromtimestamp(config.start_epoch, UTC)


def _sweep(reports: list[DriftReport], from_hour: int = 1) -> dict[str, Any]:
    """What the hourly checks said: drift hours, first verdict, the worst feature PSI."""
    statuses = [r.status for r in reports]
    drift_hours = [h for h, s in enumerate(statuses, 1) if s == "drift" and h >= from_hour]
    judged = [h for h, s in enumerate(statuses, 1) if s != "insufficient_data"]
    worst = max(
        (
            (v.stats.psi, v.name, h)
            for h, r in enumerate(reports, 1)
            if h >= from_hour
            for v in r.features.values()
            if v.status != "insufficient_data"
        ),
        default=(0.0, None, None),
    )
    drifted: dict[str, int] = {}
    for h, r in enumerate(reports, 1):
        for v in r.drifted:
            drifted.setdefault(v.name, h)
    return {
        "drift_hours": len(drift_hours),
        "first_drift_hour": drift_hours[0] if drift_hours else None,
        "first_verdict_hour": judged[0] if judged else None,
        "max_feature_psi": round(worst[0], 4),
        "max_feature_psi_name": worst[1],
        "max_score_psi": round(
            max(
                (
                    r.prediction.stats.psi
                    for r in reports
                    if r.prediction.stats.n >= THRESHOLDS.min_samples
                ),
                default=0.0,
            ),
            4,
        ),
        "first_hour_drifted": drifted,
    }


def _both(
    items: list[dict[str, Any]], start: datetime, hours: int, from_hour: int = 1
) -> dict[str, Any]:
    _, baseline = shipped()
    flat = dataclasses.replace(baseline, history=None)
    return {
        "strata": _sweep(hourly_reports(items, start, hours, baseline), from_hour),
        "flat": _sweep(hourly_reports(items, start, hours, flat), from_hour),
    }


def fresh(
    seed: int,
    cards: int,
    days: float,
    scenario: str = "baseline",
    drift_day: float = 0.0,
    **overrides: float,
) -> dict[str, Any]:
    transactions, start = simulation(seed, cards, days, scenario, drift_day, **overrides)
    items, n = simulated_items(transactions, start, start + timedelta(days=days))
    return {"seed": seed, "transactions": n} | _both(items, start, int(days * 24))


def new_population(
    seed: int, cards: int, settled_days: float, new_cards: int, days: float
) -> dict[str, Any]:
    """`cards` cards for `settled_days`, then `new_cards` more join for `days` (baseline traffic)."""
    old, start = simulation(seed, cards, settled_days + days)
    joining, _ = simulation(seed + 1000, new_cards, days + 1)
    offset = settled_days * 86400
    moved = []
    for t in joining:  # the new population's cards, ids of their own, from settled_days on
        shifted = dict(t)
        shifted["card_id"] = f"new-{t['card_id']}"
        shifted["transaction_id"] = f"new-{t['transaction_id']}"
        moment = datetime.fromisoformat(str(t["event_time"])) + timedelta(seconds=offset)
        if moment >= start + timedelta(days=settled_days + days):
            continue
        shifted["event_time"] = moment.isoformat()
        moved.append(shifted)
    merged = sorted([*old, *moved], key=lambda t: datetime.fromisoformat(str(t["event_time"])))
    items, n = simulated_items(merged, start, start + timedelta(days=settled_days + days))
    hours = int((settled_days + days) * 24)
    return {"seed": seed, "transactions": n, "new_cards": new_cards} | _both(
        items, start, hours, from_hour=int(settled_days * 24) + 1
    )


SETTLED_CARDS, SETTLED_DAYS, SETTLED_WINDOW_DAYS = 400, 30.0, 2.0
SETTLED: dict[str, tuple[str, dict[str, float]]] = {
    "baseline": ("baseline", {}),
    "channel-shift (default)": ("channel-shift", {}),
    "amount-inflation x2.5": ("amount-inflation", {"inflation_factor": 2.5}),
    "amount-inflation x1.8 (default)": ("amount-inflation", {}),
    "new-fraud-pattern, 25 %": ("new-fraud-pattern", {"new_pattern_rate": 0.25}),
    "new-fraud-pattern, 0.6 % (default)": ("new-fraud-pattern", {}),
}


def settled(seed: int, scenario: str, overrides: Mapping[str, float]) -> dict[str, Any]:
    """The last two days of 30 (400 cards with weeks of history), the scenario over them."""
    drift_day = SETTLED_DAYS - SETTLED_WINDOW_DAYS
    transactions, start = simulation(
        seed, SETTLED_CARDS, SETTLED_DAYS, scenario, drift_day, **overrides
    )
    end = start + timedelta(days=SETTLED_DAYS)
    window = DriftWindow(end - timedelta(days=SETTLED_WINDOW_DAYS), end)
    items, n = simulated_items(transactions, window.start, end)
    _, baseline = shipped()
    report = build_report(window, baseline, sum_items(items, window, baseline), THRESHOLDS, end)
    variables = [*report.features.values(), report.prediction]
    return {
        "seed": seed,
        "transactions": n,
        "status": report.status,
        "psi": {v.name: round(v.stats.psi, 4) for v in variables},
        "score_js": round(report.prediction.stats.js_distance, 4),
        "drifted": [v.name for v in report.drifted],
        "warned": [v.name for v in variables if v.status == "warn"],
    }


SCENARIOS: dict[str, dict[str, Any]] = {
    "channel-shift": {},
    "amount-inflation": {"inflation_factor": 2.5},
    "new-fraud-pattern": {"new_pattern_rate": 0.25},
}


def measure(seeds: int, cards: int) -> dict[str, Any]:
    results: dict[str, Any] = {
        "date": now_iso(),
        "machine": machine(),
        "cards": cards,
        "thresholds": dataclasses.asdict(THRESHOLDS),
        "how": __doc__,
    }
    progress(f"fresh stack, 3 days of baseline traffic, {seeds} seeds")
    results["fresh_baseline_3d"] = [fresh(seed, cards, 3.0) for seed in range(seeds)]
    for name, overrides in SCENARIOS.items():
        progress(f"fresh stack, {name} from day 4, {seeds} seeds")
        results[f"fresh_{name}_from_day_4"] = [
            fresh(seed, cards, 6.0, name, 3.0, **overrides) for seed in range(seeds)
        ]
    progress("settled stacks (two-day windows after 28 days): the scenarios, baseline over seeds")
    results["settled"] = {
        name: [
            settled(seed, scenario, overrides) for seed in range(seeds if name == "baseline" else 1)
        ]
        for name, (scenario, overrides) in SETTLED.items()
    }
    progress(f"a settled stack (21 days) joined by as many new cards for 3 days, {seeds} seeds")
    results["new_population"] = [
        new_population(seed, cards, 21.0, cards, 3.0) for seed in range(seeds)
    ]
    return results


def summary_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key, runs in results.items():
        if not isinstance(runs, list) or not runs or "strata" not in runs[0]:
            continue
        for mode in ("strata", "flat"):
            sweeps = [run[mode] for run in runs]
            firsts = [s["first_drift_hour"] for s in sweeps if s["first_drift_hour"]]
            rows.append(
                {
                    "scenario": key,
                    "baseline": mode,
                    "seeds": len(runs),
                    "seeds_with_drift": sum(1 for s in sweeps if s["drift_hours"]),
                    "drift_hours": sum(s["drift_hours"] for s in sweeps),
                    "first_drift_hour": [min(firsts), max(firsts)] if firsts else None,
                    "first_verdict_hour": max(s["first_verdict_hour"] or 0 for s in sweeps),
                    "max_feature_psi": max(s["max_feature_psi"] for s in sweeps),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drift_warmup", description=__doc__)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--cards", type=int, default=1000)
    args = parser.parse_args(argv)
    results = measure(args.seeds, args.cards)
    results["summary"] = summary_rows(results)
    write_json(RESULTS, results)
    for row in results["summary"]:
        print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
