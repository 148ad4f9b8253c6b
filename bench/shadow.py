"""What a challenger in shadow costs the score handler: champion alone against champion and
challenger, side by side.

`python -m bench.shadow [--batches N]` writes bench/results/shadow.json and prints it; `make
bench` runs it as part 1d with fewer batches.

Two score handlers run in one process, each on its own in-memory AWS (bench/fake_aws.py, as
bench/hot_path.py runs them), every batch through both, the order rotating:

- `champion_alone`: the handler as deployed with no challenger named;
- `with_challenger`: the same handler following a registry whose pointer names a challenger,
  so every batch is also scored by it (scoring/shadow.py): a second ONNX run on the same rows,
  its bins and decision, its fields on every prediction (larger items to write) and its SHAD
  count items in the same transactions.

The challenger is the shipped model under another version: a retrained challenger of the same
kind is a model of the same size, and the second model run is the cost that scales with it.
CPU per record (process time, all threads, the fake's answering taken out), medians with
min-max, and the paired ratio with_challenger / champion_alone per batch size.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bench import ROOT
from bench.common import Function
from bench.side_by_side import main as side_by_side_main
from bench.side_by_side import measure as side_by_side

RESULTS = ROOT / "bench" / "results" / "shadow.json"
MODEL_DIR = ROOT / "models" / "artifacts"
QUICK_BATCHES = 2
BENCH_BATCHES = 8
CHALLENGER_VERSION = "bench-challenger"


class _Registry:
    """The registry the challenger variant follows: no champion (the shipped model decides),
    the challenger named, never anything else."""

    def __init__(self, challenger: Any) -> None:
        self.challenger = challenger

    def pointer(self) -> tuple[str | None, str | None, int, bool]:
        return None, CHALLENGER_VERSION, 1, False

    def load(self, version: str | None) -> Any:
        return self.challenger


def challenger_dir(parent: Path) -> Path:
    """The shipped model under another version, as a registry version would hold it."""
    directory = parent / CHALLENGER_VERSION
    shutil.copytree(MODEL_DIR, directory)
    for name in ("model_card.json", "baseline.json"):
        document = json.loads((directory / name).read_text())
        (directory / name).write_text(json.dumps(document | {"model_version": CHALLENGER_VERSION}))
    return directory


def with_challenger(app: Function, challenger: Any) -> Function:
    """`app` with its stage following a registry that names `challenger` (a ScoringModel)."""
    from streamscore.aws.retry import Backoff  # noqa: PLC0415
    from streamscore.scoring.serving import ModelFollower, Served, thresholds_policy  # noqa: PLC0415

    stage = app.stage
    policy_for = thresholds_policy(None, None, stage.policy.alert_on_review, "")
    follower = ModelFollower(
        Served(stage.model, stage.policy, None), _Registry(challenger), policy_for, 3600.0
    )
    shadowed = dataclasses.replace(stage, follower=follower)
    module = importlib.import_module("streamscore.handlers.score")
    return Function(app.clients, shadowed, module.handler(shadowed, Backoff()))


def measure(batches: int) -> dict[str, Any]:
    from bench.handler_cpu import _Score  # noqa: PLC0415
    from streamscore.scoring.model import load_model  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as parent:
        challenger = load_model(challenger_dir(Path(parent)))

    def make(template: Mapping[str, Any], cls: Any, variant: str) -> Any:
        bench = cls(template)
        if cls is _Score and variant == "with_challenger":
            bench.app = with_challenger(bench.app, challenger)
        return bench

    def alone(bench: Any) -> Callable[[dict[str, Any]], float]:
        return bench.handler

    def shadowed(bench: Any) -> Callable[[dict[str, Any]], float]:
        def handler(event: dict[str, Any]) -> float:
            seconds = float(bench.handler(event))
            # untimed: the batch was scored in shadow, or this variant measures nothing
            serving, _ = bench.app.stage.follower.current()
            if serving.challenger is None or serving.challenger.version != CHALLENGER_VERSION:
                raise RuntimeError("the challenger variant served no challenger")
            return seconds

        return handler

    variants = {"champion_alone": alone, "with_challenger": shadowed}
    results = side_by_side(make, variants, batches, functions=(_Score,))
    results["challenger"] = "the shipped model under another version (the same size)"
    return results


if __name__ == "__main__":
    side_by_side_main(__doc__.splitlines()[0], measure, RESULTS)
