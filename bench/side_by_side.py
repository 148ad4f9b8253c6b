"""Instances of each function built several ways, every batch through each, the order rotating.

`compare(make, variants)` builds one instance per variant (`make(function_class, variant)`),
seeds each on its own fake AWS, and times each batch on each instance (CPU per record, as
bench/handler_cpu measures it), the order rotating batch by batch so that load on a shared
machine falls on all alike. The instances share the process: an unfrozen full garbage
collection in one walks the others' objects too.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bench import ROOT
from bench.common import (
    git_state,
    machine,
    now_iso,
    paired_ratio,
    prepare_process,
    progress,
    summary,
    versions,
    write_json,
)

SIZES = (100, 500, 1000)
MAX_RECORDS = 8000  # the simulated window's records: fewer batches of the largest size

Run = Callable[[dict[str, Any]], float]


def compare(
    template: Mapping[str, Any],
    make: Callable[[Any, str], Any],
    variants: Mapping[str, Callable[[Any], Run]],
    batches: int,
    sizes: tuple[int, ...] = SIZES,
    functions: tuple[Any, ...] | None = None,
) -> dict[str, Any]:
    """Per function and batch size: each variant's CPU µs per record and the paired ratio of
    each variant to the first (`variants` maps a name to how to run a built instance);
    `functions`: the function classes of bench/handler_cpu.py (default both)."""
    from bench.handler_cpu import _Preprocess, _Score  # noqa: PLC0415

    names = list(variants)
    results: dict[str, Any] = {}
    for cls in functions or (_Preprocess, _Score):
        built = {name: make(cls, name) for name in names}
        first = built[names[0]]
        rows: dict[str, Any] = {}
        for size in sizes:
            progress(f"side by side ({' / '.join(names)}): {first.name}, batch {size}")
            count = max(2, min(batches, MAX_RECORDS // size - 1))
            events = first.events(size, count + 1)  # the first warms up, uncounted
            for bench in built.values():
                for fake in bench.fakes():
                    fake.reset(bench.seed())
                bench.start(size)
            runs = {name: variants[name](built[name]) for name in names}
            samples: dict[str, list[float]] = {name: [] for name in names}
            for index, event in enumerate(events):
                order = names[index % len(names) :] + names[: index % len(names)]
                for name in order:
                    value = runs[name](event)
                    if index:
                        samples[name].append(value)
            rows[str(size)] = {
                "cpu_us_per_record": {k: summary(v, 1) for k, v in samples.items()},
                "ratios": {
                    f"{name}/{names[0]}": paired_ratio(samples[name], samples[names[0]], 3)
                    for name in names[1:]
                },
            }
        results[first.name] = rows
    return results


def measure(
    make: Callable[[Mapping[str, Any], Any, str], Any],
    variants: Mapping[str, Callable[[Any], Run]],
    batches: int,
    functions: tuple[Any, ...] | None = None,
) -> dict[str, Any]:
    """The run's header (date, commit, machine, versions) and `compare` on the template;
    `make(template, function_class, variant)` builds one instance."""
    from embedded.template import load_template  # noqa: PLC0415

    template = load_template(ROOT / "template.yaml")
    results: dict[str, Any] = {
        "date": now_iso(),
        "git": git_state(),
        "machine": machine(),
        "versions": versions(),
        "batches_per_size": batches,
    }
    results |= compare(
        template,
        lambda cls, name: make(template, cls, name),
        variants,
        batches,
        functions=functions,
    )
    results["machine"]["load_average_after"] = machine()["load_average"]
    return results


def main(description: str, run: Callable[[int], dict[str, Any]], path: Path) -> None:
    """The command line of a side-by-side benchmark: measure, write `path`, print the ratios."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--batches", type=int, default=12, help="measured batches per size")
    args = parser.parse_args()
    prepare_process()
    results = run(args.batches)
    write_json(path, results)
    print_ratios(results, path)


def print_ratios(results: Mapping[str, Any], path: Path) -> None:
    """Each function's and batch size's ratios, one line each, then where they were written."""
    for function in ("preprocess", "score"):
        for size, row in results.get(function, {}).items():
            ratios = "  ".join(
                f"{name} {ratio['median']:.3f} [{ratio['min']:.2f}-{ratio['max']:.2f}]"
                for name, ratio in row["ratios"].items()
            )
            print(f"{function:10s} batch {size:>4}: {ratios}")
    print(f"written: {path.relative_to(ROOT)}")
