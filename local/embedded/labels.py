"""The local run's labels: what production would learn of the scored traffic, put on LabelsStream.

After scoring drains, the predictions are read back and the simulator's truth turned into the
labels production would see (simulator/outcomes.py: chargebacks of approved frauds, days later,
some never; analysts' outcomes of reviews; nothing of declines), put on LabelsStream with the
transaction id as partition key, and LabelsFunction drained. The summary shows, per decision,
what the truth was and what the labels show of it: the blind spots of realized quality.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from embedded.producer import Traffic
from embedded.summary import scan
from simulator.outcomes import production_labels
from streamscore.aws.kinesis import StreamWriter
from streamscore.aws.retry import Backoff
from streamscore.core.monitoring import Counts
from streamscore.drift.quality import (
    DECISIONS,
    QualityCounts,
    estimated,
    paired,
    realized,
    sum_quality_items,
)

REVIEWED = "decline reviewed"  # a decline reviewed instead (DeclineSampleShare, the guard switch)


def feed_labels(
    clients: Callable[[str], Any],
    outputs: Mapping[str, str],
    traffic: Traffic,
    drain: Callable[[], None],
) -> dict[str, Any]:
    """Put the labels production would see of the stored predictions; drain; the summary section."""
    dynamodb = clients("dynamodb")
    predictions = scan(dynamodb, outputs["PredictionsTableName"])
    outcomes = production_labels(predictions, traffic.labels)
    writer = StreamWriter(clients("kinesis"), outputs["LabelsStreamName"], Backoff())
    entries = [(x["transaction_id"], json.dumps(x).encode()) for x in outcomes.labels]
    refused = writer.put_records(entries)
    drain()
    stored = {x["transaction_id"]: x for x in scan(dynamodb, outputs["LabelsTableName"])}
    by_decision: dict[str, Counter[str]] = {d: Counter() for d in (*DECISIONS, REVIEWED)}
    for prediction in predictions:
        known = traffic.labels.get(prediction["transaction_id"])
        if known is None:
            continue
        row = by_decision[REVIEWED if "guard" in prediction else prediction["decision"]]
        row["transactions"] += 1
        row["frauds"] += known.is_fraud
        label = stored.get(prediction["transaction_id"], {}).get("label")
        row[f"labelled_{label}" if label else "unlabelled"] += 1
    return {
        "quality": window_quality(scan(dynamodb, outputs["MonitoringTableName"])),
        "sent": len(entries),
        "refused": len(refused),
        "by_source": dict(sorted(Counter(x["source"] for x in outcomes.labels).items())),
        "stored": len(stored),
        "unreported_frauds": outcomes.unreported,
        "declined_frauds": outcomes.declined_frauds,
        "declined_legit": outcomes.declined_legit,
        "by_decision": {d: dict(row) for d, row in by_decision.items() if row},
    }


def window_quality(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Realized and estimated quality of the version that scored most, from all its count items
    (the local run's labels have all come back: every window is mature)."""
    sums = sum_quality_items(items, None)
    if not sums.predicted:
        return {}
    version = max(sums.predicted, key=lambda v: sums.predicted[v].n)
    counts = QualityCounts.of(sums.predicted[version], sums.labelled.get(version, Counts()))
    figures = {
        "model_version": version,
        "realized": realized(counts),
        "estimated": estimated(counts),
    }
    challengers = {c: paired(n) for (c, champion), n in sums.paired.items() if champion == version}
    return figures | ({"challengers": challengers} if challengers else {})
