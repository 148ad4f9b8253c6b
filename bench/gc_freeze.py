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
from bench.common import (
    machine,
    now_iso,
    paired_ratio,
    prepare_process,
    progress,
    summary,
    versions,
    write_json,
)

RESULTS = ROOT / "bench" / "results" / "gc_freeze.json"
SIZES = (100, 500, 1000)
MAX_RECORDS = 8000


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
    from bench.handler_cpu import _Preprocess, _Score  # noqa: PLC0415
    from embedded.template import load_template  # noqa: PLC0415

    template = load_template(ROOT / "template.yaml")
    results: dict[str, Any] = {
        "date": now_iso(),
        "git": git_state(),
        "machine": machine(),
        "versions": versions(),
        "batches_per_size": batches,
    }
    for cls in (_Preprocess, _Score):
        plain, other = cls(template), cls(template)
        rows: dict[str, Any] = {}
        for size in SIZES:
            progress(f"gc.freeze: {plain.name}, batch {size}")
            # the simulated window holds ~8,000 records: fewer batches of the largest size
            count = max(2, min(batches, MAX_RECORDS // size - 1))
            events = plain.events(size, count + 1)  # the first warms up, uncounted
            for bench in (plain, other):
                for fake in bench.fakes():
                    fake.reset(bench.seed())
                bench.start(size)
            variants = {"plain": plain.handler, "frozen": _frozen(other.handler)}
            samples: dict[str, list[float]] = {"plain": [], "frozen": []}
            for index, event in enumerate(events):
                order = list(variants) if index % 2 == 0 else list(reversed(variants))
                for name in order:
                    value = variants[name](event)
                    if index:
                        samples[name].append(value)
            rows[str(size)] = {
                "cpu_us_per_record": {k: summary(v, 1) for k, v in samples.items()},
                "frozen_over_plain": paired_ratio(samples["frozen"], samples["plain"], 3),
            }
        results[plain.name] = rows
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
            ratio = row["frozen_over_plain"]
            print(
                f"{function:10s} batch {size:>4}: frozen/plain {ratio['median']:.3f} "
                f"[{ratio['min']:.2f}-{ratio['max']:.2f}]"
            )
    print(f"written: {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
