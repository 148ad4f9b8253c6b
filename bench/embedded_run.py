"""Part 6: throughput and latency of the embedded local run (`python -m local run`).

The run streams simulated traffic through the template's stack on moto with the handlers
in-process behind the event-source emulator; its summary (--json) has the throughput from the
first put to the last prediction and the latency from arrival on TransactionsStream to the
prediction written. moto, the emulator and this machine bound these numbers, not AWS.

The run and its moto server get at most MEMORY_LIMIT_BYTES of address space (an rlimit the
server inherits): moto's TransactWriteItems deep-copies every table it touches, per
transaction, and a local run once grew its moto server past 12 GB on this 23 GB machine. A run
that hits the limit fails, the runs after it are not started, and the part records the error.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import ROOT
from bench.common import progress

MEMORY_LIMIT_BYTES = 6 * 2**30


def runs(transactions: int, count: int) -> dict[str, Any]:
    """`count` local runs one after the other: their median and min-max per figure."""
    from bench.common import summary  # noqa: PLC0415

    done = []
    for index in range(count):
        done.append(run(transactions, index + 1, count))
        if "error" in done[-1]:
            return done[-1] | {"runs_done": index}
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
        arguments = [
            "local",
            "run",
            "--transactions",
            str(transactions),
            "--json",
            str(summary_path),
            "--out",
            directory,
        ]
        # python -m local run, under an address-space limit its moto server inherits
        capped = (
            "import resource, runpy, sys; "
            f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT_BYTES}, {MEMORY_LIMIT_BYTES})); "
            f"sys.argv = {arguments!r}; "
            "runpy.run_module('local', run_name='__main__', alter_sys=True)"
        )
        started = time.perf_counter()
        # its own process group: on a timeout the moto server goes with it
        child = subprocess.Popen(
            [sys.executable, "-c", capped],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        outcome = "exited {code}"
        try:
            _, stderr = child.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            _, stderr = child.communicate()
            outcome = "was stopped at its {timeout:.0f} s timeout"
        wall = time.perf_counter() - started
        if child.returncode != 0 or not summary_path.exists():
            return {
                "error": "python -m local run "
                + outcome.format(code=child.returncode, timeout=timeout_s)
                + f" after {wall:.0f} s (address space limited to "
                f"{MEMORY_LIMIT_BYTES / 2**30:g} GiB)",
                "stderr_tail": stderr[-2000:],
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
