"""What reasons cost: CPU per explained row, and the score handler with reasons against without.

`python -m bench.reasons [--batches N]` writes bench/results/reasons.json and prints it; `make
bench` runs it as part 1e with fewer batches.

1. Per explained row: the shipped model's explainer (path-dependent TreeSHAP, as its card
   names) on 1, 15 (3 % of a batch of 500) and 50 rows of the bench's traffic, CPU µs per row,
   medians of repeated calls; beside it the interventional fallback (the card's background
   sample) that a model without covers gets.
2. Side by side (bench/side_by_side.py): two score handlers in one process, every batch
   through both, the order rotating: `reasons_off` (ReasonCount 0) and `reasons_on`
   (ReasonCount 3, the default): the reviews and declines of each batch explained and their
   reasons written on the predictions and alerts. The traffic's flag rate (reviews and
   declines per prediction) is recorded beside the ratio: the cost scales with it.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import numpy as np

from bench import ROOT
from bench.common import Function
from bench.side_by_side import main as side_by_side_main
from bench.side_by_side import measure as side_by_side

RESULTS = ROOT / "bench" / "results" / "reasons.json"
QUICK_BATCHES = 2
BENCH_BATCHES = 8
ROW_COUNTS = (1, 15, 50)
REPEATS = 30


def with_reasons(app: Function, count: int) -> Function:
    """`app` with its stage's policy asking `count` reasons."""
    from streamscore.aws.retry import Backoff  # noqa: PLC0415

    stage = app.stage
    changed = dataclasses.replace(stage, policy=dataclasses.replace(stage.policy, reasons=count))
    module = importlib.import_module("streamscore.handlers.score")
    return Function(app.clients, changed, module.handler(changed, Backoff()))


def _cpu_us_per_row(run: Callable[[], Any], rows: int, repeats: int) -> dict[str, float]:
    samples = []
    for _ in range(repeats):
        started = time.process_time()
        run()
        samples.append((time.process_time() - started) * 1e6 / rows)
    values = np.asarray(samples)
    return {
        "median": round(float(np.median(values)), 1),
        "min": round(float(values.min()), 1),
        "max": round(float(values.max()), 1),
    }


def per_row(matrix: np.ndarray, repeats: int) -> dict[str, Any]:
    """CPU µs per explained row, by rows per call, for each method on the shipped model."""
    from streamscore.scoring.model import load_model  # noqa: PLC0415
    from streamscore.scoring.onnx_trees import read_trees  # noqa: PLC0415
    from streamscore.scoring.treeshap import INTERVENTIONAL, TreeExplainer  # noqa: PLC0415

    model = load_model(ROOT / "models" / "artifacts")
    if model.reasoner is None:
        raise RuntimeError(f"the shipped model has no reasoner: {model.reasons_note}")
    trees = read_trees((ROOT / "models" / "artifacts" / "model.onnx").read_bytes())
    fallback = TreeExplainer(trees, matrix.shape[1], INTERVENTIONAL, model.card.background)
    result: dict[str, Any] = {
        "model": model.model_version,
        "leaves": int((trees.mode == -1).sum()),
        "trees": len(trees.roots),
        "background_rows": len(model.card.background),
    }
    reasoner = model.reasoner

    def top_reasons(rows: np.ndarray) -> Any:
        return reasoner.top(rows, 3)

    explainers: dict[str, Callable[[np.ndarray], Any]] = {
        reasoner.method: top_reasons,
        INTERVENTIONAL: fallback.shap_values,
    }
    for name, explain in explainers.items():
        times = max(3, repeats // 10) if name == INTERVENTIONAL else repeats
        result[name] = {
            str(n): _cpu_us_per_row(partial(explain, matrix[:n]), n, times) for n in ROW_COUNTS
        }
    return result


def traffic_matrix(rows: int) -> np.ndarray:
    """Feature rows of the bench's traffic (the feature records it sends the score handler)."""
    import base64  # noqa: PLC0415
    import json  # noqa: PLC0415

    from bench.traffic import feature_events  # noqa: PLC0415
    from streamscore.preprocess.features import FEATURE_NAMES  # noqa: PLC0415

    (event,) = feature_events(rows, 1)
    docs = [json.loads(base64.b64decode(r["kinesis"]["data"])) for r in event["Records"]]
    return np.array([[d["features"][n] for n in FEATURE_NAMES] for d in docs], dtype=np.float32)


def measure(batches: int) -> dict[str, Any]:
    from bench.handler_cpu import _Score  # noqa: PLC0415

    flagged: dict[str, list[int]] = {"predictions": [], "flagged": []}

    def make(template: Mapping[str, Any], cls: Any, variant: str) -> Any:
        bench = cls(template)
        if cls is _Score:
            bench.app = with_reasons(bench.app, 3 if variant == "reasons_on" else 0)
        return bench

    def off(bench: Any) -> Callable[[dict[str, Any]], float]:
        return bench.handler

    def on(bench: Any) -> Callable[[dict[str, Any]], float]:
        stage = bench.app.stage
        score = stage.score

        def counting(records: Any, clock: Any) -> Any:
            outcome = score(records, clock)
            flagged["predictions"].append(outcome.scored)
            flagged["flagged"].append(outcome.explained + outcome.reasons_missing)
            if outcome.reasons_missing:
                raise RuntimeError(f"reasons missing: {outcome.reasons_error}")
            return outcome

        object.__setattr__(stage, "score", counting)
        return bench.handler

    results = side_by_side(
        make, {"reasons_off": off, "reasons_on": on}, batches, functions=(_Score,)
    )
    total = sum(flagged["predictions"])
    results["flag_rate"] = round(sum(flagged["flagged"]) / total, 4) if total else None
    results["per_row"] = per_row(traffic_matrix(max(ROW_COUNTS)), REPEATS)
    return results


if __name__ == "__main__":
    side_by_side_main(__doc__.splitlines()[0], measure, RESULTS)
