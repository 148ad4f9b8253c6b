"""Part 7: what each table holds per item, measured on the embedded local run's tables.

`python -m local run` streams simulated traffic (cards with weeks of history) through the
template's stack on moto. Just before it reads its own summary back, this part scans every
table of the stack and sizes each item as DynamoDB bills storage for it (bench/model.item_size:
names plus values; the 100 bytes of per-item overhead are added by the cost model), by kind of
item: the feature records, card states, predictions, quarantine items, and in MonitoringTable
the hourly count items (PRED, QUAR, QUAL), the drift reports and the retraining-cooldown item,
and the labels (LabelsTable). It also keeps how many labels the run fed and what
LabelsFunction's mapping took to apply them (against moto: an upper bound of its duration). It
also counts the items that carry both WindowIndex key attributes (window_key, recorded_at):
the index is sparse, and only those items have a copy in it (template.yaml projects ALL).

The parent runs `python -m bench.storage --child OUT TRANSACTIONS` in a subprocess under the
same address-space cap as part 6; the child patches embedded.run's observe_stack to scan the
tables before the stack closes, then runs the local run's command line unchanged.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from bench import ROOT
from bench.model import item_size

MEMORY_LIMIT_BYTES = 6 * 2**30  # as bench/embedded_run.py: moto's transactions copy tables
TABLES = (
    "EntityStateTable",
    "FeaturesTable",
    "PredictionsTable",
    "QuarantineTable",
    "MonitoringTable",
    "LabelsTable",
)
INDEX_KEYS = ("window_key", "recorded_at")  # WindowIndex's key attributes (template.yaml)


def kind_of(table: str, item: Mapping[str, Any]) -> str:
    """The kind of a wire-format item: its table, and in MonitoringTable what its key says
    (COUNT#PRED…, COUNT#QUAR…, REPORT#…, anything else by its first key segment)."""
    if table != "MonitoringTable":
        return table
    pk = str(next(iter(item.get("pk", {"S": "?"}).values())))
    parts = pk.split("#")
    if parts[0] == "COUNT" and len(parts) > 1:
        return f"{table}:COUNT#{parts[1]}"
    return f"{table}:{parts[0]}"


def summarise(items_by_table: Mapping[str, Iterable[Mapping[str, Any]]]) -> dict[str, Any]:
    """Per kind of item: how many, their mean / max size (bytes, as DynamoDB counts them),
    and how many of them WindowIndex holds a copy of."""
    sizes: dict[str, list[int]] = defaultdict(list)
    indexed: dict[str, int] = defaultdict(int)
    for table, items in items_by_table.items():
        for item in items:
            kind = kind_of(table, item)
            sizes[kind].append(item_size(item))
            indexed[kind] += all(key in item for key in INDEX_KEYS)
    return {
        kind: {
            "items": len(values),
            "mean_bytes": round(statistics.fmean(values), 1),
            "max_bytes": max(values),
            "indexed_items": indexed[kind],
        }
        for kind, values in sorted(sizes.items())
    }


def _scan_all(dynamodb: Any, table_name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=table_name):
        items += page["Items"]
    return items


def _child(out_path: Path, transactions: int) -> int:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    import embedded.run as run_module  # noqa: PLC0415 - after bench put the import roots in place
    from embedded.cli import main as local_main  # noqa: PLC0415

    original: Callable[..., Any] = run_module.observe_stack

    def observe_and_size(clients: Any, outputs: Mapping[str, str]) -> Any:
        dynamodb = clients("dynamodb")
        tables = {name: _scan_all(dynamodb, outputs[f"{name}Name"]) for name in TABLES}
        out_path.write_text(json.dumps(summarise(tables), indent=2), encoding="utf-8")
        return original(clients, outputs)

    run_module.observe_stack = observe_and_size
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as directory:
        summary_path = Path(directory) / "summary.json"
        arguments = ["run", "--transactions", str(transactions), "--json", str(summary_path)]
        code = local_main([*arguments, "--out", directory])
        if summary_path.exists() and out_path.exists():
            # the labels the run fed and what LabelsFunction's mapping took to apply them
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
            sizes = json.loads(out_path.read_text(encoding="utf-8"))
            sizes["labels_run"] = {
                "labels_sent": summary.get("labels", {}).get("sent", 0),
                "mapping": summary.get("event_source_mappings", {}).get("LabelsFunction", {}),
            }
            # the feature log: its rows and objects, and what its mapping took to write them
            sizes["feature_log_run"] = summary.get("feature_log", {}) | {
                "mapping": summary.get("event_source_mappings", {}).get("FeatureLogFunction", {}),
            }
            out_path.write_text(json.dumps(sizes, indent=2), encoding="utf-8")
        return code


def measure(transactions: int = 2000, timeout_s: float = 900.0) -> dict[str, Any]:
    """Item sizes by kind from one local run of `transactions` transactions."""
    from bench.common import progress  # noqa: PLC0415

    progress(f"part 7: table item sizes, local run of {transactions:,} transactions")
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as directory:
        out = Path(directory) / "sizes.json"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            str(p) for p in (ROOT, ROOT / "functions", ROOT / "local", ROOT / "models")
        )
        started = time.perf_counter()
        try:
            done = subprocess.run(
                [sys.executable, "-m", "bench.storage", "--child", str(out), str(transactions)],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"the local run did not finish within {timeout_s:.0f} s"}
        if not out.exists():
            return {
                "error": f"the local run exited {done.returncode} before its tables were read",
                "stderr_tail": done.stderr[-2000:],
            }
        kinds: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    labels_run = kinds.pop("labels_run", None)
    feature_log_run = kinds.pop("feature_log_run", None)
    return {
        "transactions": transactions,
        "local_run_exit": done.returncode,
        "seconds": round(time.perf_counter() - started, 1),
        "kinds": kinds,
        "labels_run": labels_run,
        "feature_log_run": feature_log_run,
    }


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        sys.exit(_child(Path(sys.argv[2]), int(sys.argv[3])))
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 2000), indent=2))
