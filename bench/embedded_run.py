"""Part 6: throughput and latency of the embedded local run (`python -m local run`).

The run streams simulated traffic through the template's stack on moto with the handlers
in-process behind the event-source emulator; its summary (--json) has the throughput from the
first put to the last prediction and the latency from arrival on TransactionsStream to the
prediction written. moto, the emulator and this machine bound these numbers, not AWS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import ROOT
from bench.common import progress


def runs(transactions: int, count: int) -> dict[str, Any]:
    """`count` local runs one after the other: their median and min-max per figure."""
    from bench.common import summary  # noqa: PLC0415

    done = [run(transactions, index + 1, count) for index in range(count)]
    failed = [d for d in done if "error" in d]
    if failed:
        return failed[0]
    latency = {p: summary([d["latency_ms"][p] for d in done], 0) for p in ("p50", "p90", "p99")}
    return {
        "runs": count,
        "transactions": transactions,
        "records_in": done[0]["records_in"],
        "records_per_second": summary([d["records_per_second"] for d in done], 1),
        "seconds": summary([d["seconds"] for d in done], 1),
        "latency_ms": latency,
        "each": done,
    }


def run(
    transactions: int, index: int = 1, count: int = 1, timeout_s: float = 900.0
) -> dict[str, Any]:
    progress(f"embedded local run {index} of {count}, {transactions:,} transactions")
    with tempfile.TemporaryDirectory(prefix="bench-local-run-") as directory:
        summary_path = Path(directory) / "summary.json"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(str(ROOT / p) for p in ("functions", "local", "models"))
        started = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "local",
                "run",
                "--transactions",
                str(transactions),
                "--json",
                str(summary_path),
                "--out",
                directory,
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        wall = time.perf_counter() - started
        if done.returncode != 0 or not summary_path.exists():
            return {
                "error": f"python -m local run exited {done.returncode}",
                "stderr_tail": done.stderr[-2000:],
            }
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    return {
        "transactions": transactions,
        "records_in": summary["counts"]["in"],
        "scored": summary["counts"]["scored"],
        "quarantined": summary["counts"]["quarantined"],
        "failed": summary["counts"]["failed"],
        "records_per_second": summary["throughput"]["records_per_second"],
        "seconds": summary["throughput"]["seconds"],
        "latency_ms": summary["latency_ms"],
        "process_wall_s": round(wall, 1),
        "drift_status": (summary.get("drift") or {}).get("status"),
    }
