"""The local run's feature log check and its retrain (`--retrain`).

The feature log is read back whole: one row per scored transaction, none for a transaction that
was not scored, each with its features. The retrain is `python -m models retrain` on the
embedded stack in simulated time: the simulated period ends the window (its labels have all
come back, so the cut-off is its end plus the maturity), and the waiting rule counts from the
scenario's drift start, as if the drift check had found it then.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from embedded.producer import Traffic
from lifecycle.retrain_command import add_arguments, run_retrain
from streamscore.featurelog.rows import LOG_PREFIX, decode


def feature_log_section(s3: Any, bucket: str, scored: set[str]) -> dict[str, Any]:
    """What the feature log holds against the transactions scored."""
    rows: list[dict[str, Any]] = []
    objects = stored = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=LOG_PREFIX):
        for entry in page.get("Contents", []):
            rows += decode(s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read())
            objects += 1
            stored += int(entry["Size"])
    logged = {r["transaction_id"] for r in rows}
    return {
        "objects": objects,
        "bytes": stored,
        "rows": len(rows),
        "transactions": len(logged),
        "repeated_rows": len(rows) - len(logged),
        "without_features": sum(1 for r in rows if not r.get("features")),
        "scored_not_logged": len(scored - logged),
        "logged_not_scored": len(logged - scored),
    }


def retrain_section(
    client: Callable[[str], Any],
    outputs: Mapping[str, str],
    traffic: Traffic,
    parameters: Mapping[str, str],
    out_dir: Path,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Run the retrain command on the embedded stack; the summary's section."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--simulated-time", "--out", str(out_dir / "retrain")])
    if traffic.event_end is None:
        return {"verdict": "not_run", "why": "traffic without simulated event times"}
    args.cutoff = (traffic.event_end + timedelta(days=args.maturity_days)).isoformat()
    if traffic.drift_from is not None:
        args.trigger_time = traffic.drift_from.isoformat()
    else:
        args.ignore_trigger = True
    names = {
        "bucket": outputs["ArtifactsBucketName"],
        "table": outputs["MonitoringTableName"],
        "labels": outputs["LabelsTableName"],
    }
    status, report = run_retrain(args, client, names, dict(parameters), say)
    gate = report.get("gate") or {}
    section = {
        "status": status,
        "verdict": report["verdict"],
        "why": report["why"],
        "champion": report.get("champion"),
        "candidate": report.get("candidate"),
        "window": report.get("window"),
        "slices": report.get("slices"),
        "published": report.get("published"),
        "report_dir": str(args.out),
    }
    for key in ("pr_auc_difference", "recall_at_decline_difference"):
        if key in gate:
            section[key] = gate[key]
    return section
