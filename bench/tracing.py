"""What X-Ray tracing costs the handlers: tracing off, on and not sampled, on and sampled.

`python -m bench.tracing [--rounds N] [--batches N]` writes bench/results/tracing.json and
prints it (about 5 minutes).

The template turns tracing on (`Tracing: Active`): Powertools' Tracer patches botocore when it
starts, every AWS call then opens an X-Ray subsegment, and the handler one of its own. Lambda
decides per invocation whether a trace is sampled and says so in the trace header; the Lambda
Developer Guide (https://docs.aws.amazon.com/lambda/latest/dg/services-xray.html): "The default
sampling rule is 1 request per second and 5 percent of additional requests. This sampling rate
cannot be configured for Lambda functions." A function invoked about once a second (one shard,
a one-second batching window) has most of its batches sampled; one invoked many times a second,
about 5 % of them.

The patch is global to a process and cannot be undone, so the three modes cannot share one
process as the other side-by-side benchmarks do. Each mode runs in its own process instead
(`python -m bench.tracing --child MODE FUNCTION SIZE BATCHES`), built as bench/handler_cpu.py
builds the handler (AWS answered in memory, the answering's CPU taken out, what exists frozen
before each call), with a new trace id per invocation and the X-Ray SDK emitting to
127.0.0.1:2000, where nothing listens (as bench/cold_start.py does); the modes' processes
alternate, round after round, and each round's sampled and unsampled medians are divided by
the same round's untraced one.

- `off`: POWERTOOLS_TRACE_DISABLED=true, as `make bench` measures the handlers;
- `unsampled`: tracing on, trace header Sampled=0;
- `paired`: tracing on, the trace header alternating batch by batch between Sampled=1 and
  Sampled=0 in one process: the cost of a sampled invocation over an unsampled one, paired
  batch by batch (process-to-process noise here is ±10-25 %, more than that cost).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from typing import Any

from bench import ROOT

RESULTS = ROOT / "bench" / "results" / "tracing.json"
MODES = ("off", "unsampled", "paired")
SIZES = {"preprocess": (10, 100, 500), "score": (10, 100, 500)}


def _trace_header(sampled: bool) -> str:
    root = f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"
    return f"Root={root};Parent={secrets.token_hex(8)};Sampled={int(sampled)}"


def child(mode: str, function: str, size: int, batches: int) -> dict[str, Any]:
    """One process: build the function with tracing as `mode` says, run `batches` batches."""
    from bench import common  # noqa: PLC0415

    common.prepare_process()
    traced = mode != "off"
    common.COMMON_FUNCTION_ENV["POWERTOOLS_TRACE_DISABLED"] = "false" if traced else "true"
    # prepare_process turned tracing off again; the rest of Lambda's environment is the
    # parent's (cold_start.lambda_like_env)
    os.environ["POWERTOOLS_TRACE_DISABLED"] = "false" if traced else "true"
    from bench.handler_cpu import _Preprocess, _Score  # noqa: PLC0415
    from embedded.template import load_template  # noqa: PLC0415

    cls = _Preprocess if function == "preprocess" else _Score
    bench = cls(load_template(ROOT / "template.yaml"))
    count = min(batches, 8000 // size - 1)
    events = bench.events(size, count + 1)  # the first warms up, uncounted
    for fake in bench.fakes():
        fake.reset(bench.seed())
    bench.start(size)
    samples: dict[bool, list[float]] = {True: [], False: []}
    for index, event in enumerate(events):
        sampled = mode == "paired" and index % 2 == 1
        os.environ["_X_AMZN_TRACE_ID"] = _trace_header(sampled)
        value = bench.handler(event)
        if index:
            samples[sampled].append(value)
    row: dict[str, Any] = {
        "cpu_us_per_record": statistics.median(samples[False]),
        "batches": len(samples[False]) + len(samples[True]),
    }
    if mode == "paired":  # batch 2k+1 sampled against batch 2k+2 not: neighbours, alternating
        pairs = zip(samples[True], samples[False], strict=False)
        row["sampled_over_unsampled"] = statistics.median(a / b for a, b in pairs)
    return row


def _run_child(mode: str, function: str, size: int, batches: int) -> dict[str, Any]:
    """A child in Lambda's environment as bench/cold_start.py gives it (LAMBDA_TASK_ROOT, a
    trace header, the X-Ray daemon address where nothing listens, no CRT signer)."""
    from bench.cold_start import lambda_like_env  # noqa: PLC0415

    done = subprocess.run(
        [sys.executable, "-m", "bench.tracing", "--child", mode, function, str(size), str(batches)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=lambda_like_env(function),
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def measure(rounds: int, batches: int) -> dict[str, Any]:
    from bench.common import git_state, machine, now_iso, progress, summary, versions  # noqa: PLC0415

    results: dict[str, Any] = {
        "date": now_iso(),
        "git": git_state(),
        "machine": machine(),
        "versions": versions(),
        "rounds": rounds,
        "batches_per_process": batches,
    }
    for function, sizes in SIZES.items():
        rows: dict[str, Any] = {}
        for size in sizes:
            runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
            for round_ in range(rounds):
                progress(f"tracing: {function}, batch {size}, round {round_ + 1} of {rounds}")
                order = MODES[round_ % 3 :] + MODES[: round_ % 3]
                for mode in order:
                    runs[mode].append(_run_child(mode, function, size, batches))
            cpu = {m: [r["cpu_us_per_record"] for r in rs] for m, rs in runs.items()}
            rows[str(size)] = {
                "cpu_us_per_record": {
                    "off": summary(cpu["off"], 1),
                    "unsampled": summary(cpu["unsampled"], 1),
                },
                "ratios": {
                    "unsampled/off": summary(
                        [a / b for a, b in zip(cpu["unsampled"], cpu["off"], strict=True)], 3
                    ),
                    "sampled/unsampled": summary(
                        [r["sampled_over_unsampled"] for r in runs["paired"]], 3
                    ),
                },
            }
        results[function] = rows
    results["machine"]["load_average_after"] = machine()["load_average"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="processes per mode and size")
    parser.add_argument("--batches", type=int, default=16, help="measured batches per process")
    parser.add_argument("--child", nargs=4, metavar=("MODE", "FUNCTION", "SIZE", "BATCHES"))
    args = parser.parse_args()
    if args.child:
        mode, function, size, batches = args.child
        print(json.dumps(child(mode, function, int(size), int(batches))))
        return
    from bench.common import write_json  # noqa: PLC0415
    from bench.side_by_side import print_ratios  # noqa: PLC0415

    results = measure(args.rounds, args.batches)
    write_json(RESULTS, results)
    print_ratios(results, RESULTS)


if __name__ == "__main__":
    main()
