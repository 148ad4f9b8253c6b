"""What a retrain reads of a stack: the feature log (S3), the labels (LabelsTable), the champion
(the registry, or the shipped model when the registry names none), the last drift trigger."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from lifecycle.retrain import ServedModel
from lifecycle.training_set import LoggedRow
from streamscore.aws.dynamodb import deserialize
from streamscore.aws.registry import S3ModelVersions
from streamscore.core.monitoring import COOLDOWN, RETRAIN
from streamscore.core.registry import Pointer
from streamscore.featurelog.rows import date_prefix, decode, first_rows

SHIPPED = Path(__file__).resolve().parents[1] / "artifacts"  # what ModelLayer serves


def _dates(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def logged_row(row: dict[str, Any], simulated_time: bool = False) -> LoggedRow:
    """A feature-log row as the training set takes it; `simulated_time`: scored when it happened
    (a simulated run scores weeks of event time in minutes)."""
    event_time = _when(str(row["event_time"]))
    return LoggedRow(
        transaction_id=str(row["transaction_id"]),
        event_time=event_time,
        scored_at=event_time if simulated_time else _when(str(row["scored_at"])),
        decision=str(row["decision"]),
        features=row["features"] or {},
        guard=row.get("guard"),
        card_age_s=float(row.get("card_age_s", float("nan"))),
    )


def read_feature_log(
    s3: Any,
    bucket: str,
    first: date,
    last: date,
    simulated_time: bool = False,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[LoggedRow], dict[str, int]]:
    """Rows of the log's date partitions `first`..`last` (the scored dates), one per transaction
    (the first scored); rows logged without features are counted, not returned."""
    raw: list[dict[str, Any]] = []
    objects = 0
    paginator = s3.get_paginator("list_objects_v2")
    for day in _dates(first, last):
        for page in paginator.paginate(Bucket=bucket, Prefix=date_prefix(day.isoformat())):
            for entry in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
                raw += decode(body)
                objects += 1
        if progress is not None and raw:
            progress(f"feature log {day.isoformat()}: {objects} objects, {len(raw):,} rows so far")
    unique = first_rows(raw)
    rows = [logged_row(dict(r), simulated_time) for r in unique.values() if r.get("features")]
    counts = {
        "objects": objects,
        "rows": len(raw),
        "transactions": len(unique),
        "without_features": len(unique) - len(rows),
    }
    return rows, counts


def read_labels(
    dynamodb: Any, table: str, simulated_time: bool = False
) -> dict[str, dict[str, Any]]:
    """Every LabelsTable item by transaction id; `simulated_time`: each label received when it
    was labelled (its key's time), as the simulated run's labels stand for weeks of them."""
    items: dict[str, dict[str, Any]] = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for raw in page["Items"]:
            item = deserialize(raw)
            if simulated_time:
                item.pop("received_at", None)
                item.pop("replaces_received_at", None)
            items[str(item["transaction_id"])] = item
    return items


def champion(versions: S3ModelVersions, pointer: Pointer, workdir: Path) -> ServedModel:
    """The model the registry's champion names, or the shipped one (ModelLayer) without one."""
    directory = SHIPPED
    if pointer.champion:
        directory = versions.download(pointer.champion, workdir / pointer.champion)
    card = json.loads((directory / "model_card.json").read_text())
    return ServedModel(str(card["model_version"]), (directory / "model.onnx").read_bytes(), card)


def last_trigger(dynamodb: Any, table: str, model_version: str) -> datetime | None:
    """When the drift check last asked for retraining of `model_version` (its cooldown item)."""
    key = {"pk": {"S": f"{RETRAIN}#{model_version}"}, "sk": {"S": COOLDOWN}}
    item = dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
    when = deserialize(item).get("triggered_at") if item else None
    return _when(str(when)) if when else None
