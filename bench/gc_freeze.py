"""gc.freeze() after init: each handler with its init's objects frozen against the same handler without.

`python -m bench.gc_freeze [--batches N]` writes bench/results/gc_freeze.json and prints it.

In Lambda a handler module freezes what init built (streamscore.core.lambda_init), so the
full collections of warm invocations no longer walk the clients, pools, settings and model.
Here two instances of one function run in one process, each on its own in-memory AWS
(bench/fake_aws.py), each batch once through both, their order alternating: `plain` as
before, `frozen` with every object that exists before its invocation frozen for it (gc.freeze
before, gc.unfreeze after, outside the timed call). Both share the process, so `plain`'s full
collections also walk the other instance's objects: a process holding one handler, as Lambda
does, walks about half as much, and the gain there may be smaller than measured here. CPU per
record (process time, all threads), medians with min-max, and the paired ratio frozen/plain.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from bench import ROOT
from bench.side_by_side import main as side_by_side_main
from bench.side_by_side import measure as side_by_side

RESULTS = ROOT / "bench" / "results" / "gc_freeze.json"


def _frozen(run: Callable[[dict[str, Any]], float]) -> Callable[[dict[str, Any]], float]:
    def frozen(event: dict[str, Any]) -> float:
        gc.freeze()
        try:
            return run(event)
        finally:
            gc.unfreeze()

    return frozen


def measure(batches: int) -> dict[str, Any]:
    variants = {
        "plain": lambda bench: bench.handler,
        "frozen": lambda bench: _frozen(bench.handler),
    }
    return side_by_side(lambda template, cls, _: cls(template), variants, batches)


if __name__ == "__main__":
    side_by_side_main(__doc__.splitlines()[0], measure, RESULTS)
