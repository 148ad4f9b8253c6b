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

import argparse
import gc
from collections.abc import Callable
from typing import Any

from bench import ROOT
from bench.common import machine, now_iso, prepare_process, versions, write_json

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
    from bench.common import git_state  # noqa: PLC0415
    from bench.side_by_side import compare  # noqa: PLC0415
    from embedded.template import load_template  # noqa: PLC0415

    template = load_template(ROOT / "template.yaml")
    results: dict[str, Any] = {
        "date": now_iso(),
        "git": git_state(),
        "machine": machine(),
        "versions": versions(),
        "batches_per_size": batches,
    }
    variants = {
        "plain": lambda bench: bench.handler,
        "frozen": lambda bench: _frozen(bench.handler),
    }
    results |= compare(template, lambda cls, _: cls(template), variants, batches)
    results["machine"]["load_average_after"] = machine()["load_average"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=12, help="measured batches per size")
    args = parser.parse_args()
    prepare_process()
    results = measure(args.batches)
    write_json(RESULTS, results)
    for function in ("preprocess", "score"):
        for size, row in results[function].items():
            ratio = row["ratios"]["frozen/plain"]
            print(
                f"{function:10s} batch {size:>4}: frozen/plain {ratio['median']:.3f} "
                f"[{ratio['min']:.2f}-{ratio['max']:.2f}]"
            )
    print(f"written: {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
