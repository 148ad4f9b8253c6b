"""`make bench` / `python -m bench`: run every benchmark, write bench/results/latest.json (the
previous one kept as previous.json) and docs/PERFORMANCE.md, print the change per figure.

    python -m bench [--quick] [--records N] [--cold-runs N] [--embedded-transactions N | --no-embedded]
    python -m bench --recost [--storage-transactions N]

--recost measures nothing but the tables' item sizes (part 7, one short local run; the sizes
recorded in latest.json with --storage-transactions 0): it derives capacity and cost again from
the measurements recorded in latest.json with today's prices.json and template, and rewrites
latest.json (previous.json is kept) and docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import ROOT
from bench.common import (
    TEMPLATE_PATH,
    git_state,
    machine,
    now_iso,
    prepare_process,
    progress,
    versions,
)

PRICES = ROOT / "bench" / "prices.json"
TRACKED_PARAMETERS = (
    "PreprocessMemorySize",
    "ScoreMemorySize",
    "DriftCheckMemorySize",
    "PreprocessBatchSize",
    "ScoreBatchSize",
    "PreprocessMaximumBatchingWindowInSeconds",
    "ScoreMaximumBatchingWindowInSeconds",
    "PreprocessParallelizationFactor",
    "ScoreParallelizationFactor",
    "StreamMode",
    "DriftSchedule",
    "DriftWindowMinutes",
    "DriftCheckTimeout",
    "Architecture",
    "Tracing",
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    parser.add_argument("--records", type=int, help="records per batch size (default 6000)")
    parser.add_argument("--cold-runs", type=int, help="processes per function (default 5)")
    parser.add_argument(
        "--embedded-transactions",
        type=int,
        help="transactions of each local run (default 3000, three runs)",
    )
    parser.add_argument("--no-embedded", action="store_true", help="skip the local run")
    parser.add_argument(
        "--storage-transactions",
        type=int,
        help="transactions of the local run that sizes the tables' items (default 2000; "
        "0: reuse the sizes in latest.json)",
    )
    parser.add_argument(
        "--recost",
        action="store_true",
        help="derive capacity and cost again from latest.json's measurements (prices, template)",
    )
    return parser.parse_args(argv)


def derive(
    results: dict[str, Any], template: dict[str, Any], table: dict[str, Any], sizes: dict[str, Any]
) -> None:
    """Parts 4 and 5 from the measured parts in `results` (capacity, cost; in place)."""
    from bench import analysis  # noqa: PLC0415
    from embedded.template import parameter_values  # noqa: PLC0415

    values = parameter_values(template)
    cpu, cold = results["cpu"], results["cold_start"]
    pre_profile = analysis.function_profile(
        "preprocess",
        cpu["preprocess"],
        values,
        "Preprocess",
        init=analysis.init_ms(cold, "preprocess"),
    )
    score_profile = analysis.function_profile(
        "score", cpu["score"], values, "Score", init=analysis.init_ms(cold, "score")
    )
    drift_profile = analysis.drift_profile(
        cpu["drift_check"], values, analysis.init_ms(cold, "drift_check")
    )
    usage = analysis.usage(results["calls"], template, sizes, table)
    results["storage"] = sizes
    results["capacity"] = analysis.capacity(
        pre_profile, score_profile, drift_profile, usage, cpu, values, table
    )
    results["cost"] = analysis.cost(pre_profile, score_profile, drift_profile, usage, table)
    results["prices"] = table


def drift_parts(
    template: dict[str, Any],
    latency: dict[str, float],
    captured: list[dict[str, Any]],
    table: dict[str, Any],
    quick: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The drift check's CPU per window item (part 1), then the drift check over a day of
    1,000 transactions/s (part 1b, bench/drift_volume.py; 3 runs per window, quick: 1)."""
    from bench import drift_volume  # noqa: PLC0415
    from bench.handler_cpu import drift_cpu  # noqa: PLC0415

    drift = drift_cpu(template, latency, captured)
    progress("part 1b: the drift check at volume (1,000 transactions/s for a day)")
    return drift, drift_volume.measure(template, table, quick=quick, runs=None if quick else 3)


def hot_path_part(quick: bool) -> dict[str, Any]:
    """Part 1c (bench/hot_path.py): each change to the hot path turned off alone, side by side."""
    from bench import hot_path  # noqa: PLC0415

    progress("part 1c: each change to the hot path, side by side")
    hot = hot_path.measure(hot_path.QUICK_BATCHES if quick else hot_path.BENCH_BATCHES)
    return {k: hot[k] for k in ("batches_per_size", "variants", "preprocess", "score")}


def shadow_part(quick: bool) -> dict[str, Any]:
    """Part 1d (bench/shadow.py): the score handler with a challenger in shadow, side by side."""
    from bench import shadow  # noqa: PLC0415

    progress("part 1d: a challenger in shadow, side by side")
    results = shadow.measure(shadow.QUICK_BATCHES if quick else shadow.BENCH_BATCHES)
    return {k: results[k] for k in ("batches_per_size", "challenger", "score")}


def reasons_part(quick: bool) -> dict[str, Any]:
    """Part 1e (bench/reasons.py): CPU per explained row, and the handler with and without."""
    from bench import reasons  # noqa: PLC0415

    progress("part 1e: reasons, per explained row and side by side")
    results = reasons.measure(reasons.QUICK_BATCHES if quick else reasons.BENCH_BATCHES)
    return {k: results[k] for k in ("batches_per_size", "flag_rate", "per_row", "score")}


def latency_part(results: dict[str, Any], quick: bool) -> str:
    """Part 8 (bench/latency.py): the latency model on this run's handler figures, written to
    bench/results/latency.json; its section of docs/PERFORMANCE.md."""
    from bench import latency  # noqa: PLC0415

    progress("part 8: end-to-end latency, the model (bench/latency.py) on these figures")
    try:
        modelled = latency.write(results, quick=quick)
    except latency.LatencyInputError as error:
        return f"\n## 8. End-to-end latency per shard\n\nNot modelled: {error}\n"
    print(latency.table(modelled))
    return "\n" + latency.markdown(modelled)


def recorded_latency() -> str:
    """The latency section from bench/results/latency.json as recorded (a recost changes no
    duration); empty when there is none."""
    from bench import latency  # noqa: PLC0415

    if not latency.RESULTS.exists():
        return ""
    return "\n" + latency.markdown(json.loads(latency.RESULTS.read_text()))


def recost(args: argparse.Namespace) -> int:
    """Capacity and cost again from the recorded measurements (no CPU, cold-start or calls run)."""
    from bench import report, storage  # noqa: PLC0415
    from bench.model import load_table  # noqa: PLC0415
    from embedded.template import load_template  # noqa: PLC0415

    results = report.load_latest()
    if results is None:
        print("no bench/results/latest.json to recost: run python -m bench first")
        return 2
    transactions = 2000 if args.storage_transactions is None else args.storage_transactions
    sizes = storage.measure(transactions) if transactions else results.get("storage") or {}
    if "error" in sizes:
        print(f"part 7 failed: {sizes['error']}")
        return 1
    template = load_template(TEMPLATE_PATH)
    derive(results, template, load_table(PRICES), sizes)
    results["recosted"] = {"date": now_iso(), "git": git_state()}
    tracked = report.figures(results)
    before = report.load_previous()
    results["figures"] = tracked
    results["changes"] = report.changes(tracked, (before or {}).get("figures"))
    report.save(results, rotate=False)
    report.write_markdown(report.render(results, results["changes"]) + recorded_latency())
    report.print_changes(results["changes"], tracked)
    print(
        f"\nwritten: {report.LATEST.relative_to(ROOT)}, {report.PERFORMANCE_MD.relative_to(ROOT)}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.recost:
        prepare_process()
        return recost(args)
    records = args.records or (1000 if args.quick else 6000)
    cold_runs = args.cold_runs or (2 if args.quick else 5)
    embedded_n = args.embedded_transactions or (1000 if args.quick else 3000)
    embedded_runs = 1 if args.quick else 3
    prepare_process()

    # heavy imports after the environment is set
    from bench import calls, cold_start, embedded_run, report, storage  # noqa: PLC0415
    from bench.handler_cpu import (  # noqa: PLC0415
        _table_keys,
        _window_items,
        ort_threads,
        preprocess_cpu,
        score_cpu,
    )
    from bench.model import latencies_s, load_table  # noqa: PLC0415
    from embedded.template import load_template, parameter_values  # noqa: PLC0415

    started = now_iso()
    box = machine()
    template = load_template(TEMPLATE_PATH)
    values = parameter_values(template)
    table = load_table(PRICES)
    latency = latencies_s(table)

    progress("part 1: handler CPU per record")
    pre = preprocess_cpu(template, latency, records)
    sco = score_cpu(template, latency, records)
    captured = pre.pop("_monitoring_items") + sco.pop("_monitoring_items")
    drift, volume = drift_parts(template, latency, captured, table, args.quick)
    threads = ort_threads()

    progress("part 3: AWS calls along the whole path")
    path_calls = calls.whole_path(template)

    progress("part 2: cold start")
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as directory:
        from datetime import UTC, datetime  # noqa: PLC0415

        setups = cold_start.write_setups(
            Path(directory),
            _table_keys(template),
            {
                "preprocess": int(values["PreprocessBatchSize"]),
                "score": int(values["ScoreBatchSize"]),
            },
            _window_items(captured, 1000, datetime.now(UTC)),
        )
        cold = cold_start.measure(setups, cold_runs)

    embedded: dict[str, Any] = {"error": "skipped (--no-embedded)"}
    sizes: dict[str, Any] = {}
    if not args.no_embedded:
        progress("part 6: embedded local run")
        embedded = embedded_run.runs(embedded_n, embedded_runs)
        # on an error the item sizes come from part 3 (analysis.stored_kinds), the error kept
        sizes = storage.measure(args.storage_transactions or (1000 if args.quick else 2000))

    progress("parts 4 and 5: capacity and cost")
    cpu = {"preprocess": pre, "score": sco, "drift_check": drift}
    results: dict[str, Any] = {
        "schema": 1,
        "date": started,
        "machine": box,
        "load_average_after": machine()["load_average"],
        "versions": versions(),
        "git": git_state(),
        "quick": args.quick,
        "template": {k: values[k] for k in TRACKED_PARAMETERS},
        "cpu": cpu,
        "ort_threads_batch_500": threads,
        "cold_start": cold,
        "calls": path_calls,
        "embedded": embedded,
        "drift_volume": volume,
        "hot_path": hot_path_part(args.quick),
        "shadow": shadow_part(args.quick),
        "reasons": reasons_part(args.quick),
    }
    derive(results, template, table, sizes)
    tracked = report.figures(results)
    previous = report.load_latest()
    results["previous_date"] = previous["date"] if previous else None
    results["figures"] = tracked
    results["changes"] = report.changes(tracked, (previous or {}).get("figures"))
    report.save(results)
    report.write_markdown(
        report.render(results, results["changes"]) + latency_part(results, args.quick)
    )
    report.print_changes(results["changes"], tracked)
    print(
        f"\nwritten: {report.LATEST.relative_to(ROOT)}, {report.PERFORMANCE_MD.relative_to(ROOT)}"
    )
    return 0
