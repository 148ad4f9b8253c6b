"""The retrain gate's verdicts on simulated traffic, scenario by scenario and seed by seed.

`python -m bench.retrain [--seeds N] [--cards N]` writes bench/results/retrain.json and prints a
table.

Per scenario and seed: `--cards` cards over 42 days, the scenario from day 21 (the drift the
retrain answers); the features replayed as preprocess computes them, the shipped model's
decisions with a 20 % decline sample, the labels production would see (lifecycle/simulated.py);
then the retrain as `python -m models retrain` runs it (lifecycle/retrain.py: the window of 28
days ending at the simulation's end, a cut-off 35 days later, the waiting rule from day 21),
with its gate. Offline: the stack is not run, so this measures the statistics, not the I/O.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from bench import ROOT
from lifecycle.retrain import RetrainPolicy, ServedModel, plan, retrain
from lifecycle.simulated import logged
from simulator import SimulationConfig, simulate
from training.dataset import build_dataset

RESULTS = ROOT / "bench" / "results" / "retrain.json"
SCENARIOS = ("baseline", "channel-shift", "new-fraud-pattern")
DAYS = 42
SHIFT_DAYS = 21
SAMPLE = 0.2
ARTIFACTS = ROOT / "models" / "artifacts"


def shipped() -> ServedModel:
    card = json.loads((ARTIFACTS / "model_card.json").read_text())
    return ServedModel(card["model_version"], (ARTIFACTS / "model.onnx").read_bytes(), card)


def one(scenario: str, seed: int, cards: int, champion: ServedModel) -> dict[str, Any]:
    config = SimulationConfig(
        seed=seed,
        n_cards=cards,
        days=DAYS,
        scenario=scenario,  # type: ignore[arg-type]
        drift_start=(DAYS - SHIFT_DAYS) / DAYS,
    )
    batch = simulate(config)
    log = logged(batch, build_dataset(batch), champion, SAMPLE)
    policy = RetrainPolicy(seed=seed)
    end = datetime.fromtimestamp(config.start_epoch + DAYS * 86_400, UTC)
    trigger = datetime.fromtimestamp(config.start_epoch + (DAYS - SHIFT_DAYS) * 86_400, UTC)
    window = plan(end + timedelta(days=policy.maturity_days), policy, trigger)
    report = retrain(log.rows, log.labels, champion, window, policy, SAMPLE).report
    gate = report.get("gate", {})
    return {
        "scenario": scenario,
        "seed": seed,
        "transactions": len(batch),
        "verdict": report["verdict"],
        "why": report["why"],
        "slices": report["slices"],
        "champion": gate.get("champion"),
        "candidate": gate.get("candidate"),
        "pr_auc_difference": gate.get("pr_auc_difference"),
        "recall_at_decline_difference": gate.get("recall_at_decline_difference"),
        "calibration": report.get("calibration"),
    }


def measure(seeds: int, cards: int) -> dict[str, Any]:
    champion = shipped()
    runs = []
    for scenario in SCENARIOS:
        for seed in range(1, seeds + 1):
            started = time.perf_counter()
            run = one(scenario, seed, cards, champion)
            runs.append(run)
            difference = run["pr_auc_difference"] or {}
            print(
                f"{scenario:<18} seed {seed}: {run['verdict']:<12} PR-AUC difference "
                f"{difference.get('value', float('nan')):+.3f} "
                f"{[round(x, 3) for x in difference.get('interval', [])]} "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    summary = {}
    for scenario in SCENARIOS:
        mine = [r for r in runs if r["scenario"] == scenario]
        values = [r["pr_auc_difference"]["value"] for r in mine if r["pr_auc_difference"]]
        summary[scenario] = {
            "verdicts": {
                v: sum(r["verdict"] == v for r in mine) for v in {r["verdict"] for r in mine}
            },
            "pr_auc_difference_mean": float(np.mean(values)) if values else None,
            "pr_auc_difference_range": [min(values), max(values)] if values else None,
        }
    return {
        "config": {
            "cards": cards,
            "days": DAYS,
            "shift_days_before_end": SHIFT_DAYS,
            "decline_sample_share": SAMPLE,
            "policy": asdict(RetrainPolicy()),
            "champion": champion.version,
        },
        "summary": summary,
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cards", type=int, default=2000)
    args = parser.parse_args()
    results = measure(args.seeds, args.cards)
    RESULTS.write_text(json.dumps(results, indent=1, default=float) + "\n")
    for scenario, figures in results["summary"].items():
        print(f"{scenario:<18} {figures}")


if __name__ == "__main__":
    main()
