"""Feature-log rows and objects: pure functions, no AWS.

A row is one transaction as scoring committed it (the prediction's first write, a PredictionsTable
INSERT) joined with the feature record it was scored from (FeaturesTable, written once by
preprocess before the record reached scoring). Rows of one batch go to one object per scored
date: `feature-log/date=YYYY-MM-DD/<first sequence number>-<digest>.jsonl.gz`, the digest over
the batch's stream event ids of that date. A retried batch with the same records names the same
object (written once: S3's conditional write); a retry with other boundaries names another, so
a reader keeps the first row of each transaction (`first_rows`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

LOG_PREFIX = "feature-log/"
# the prediction's fields a row keeps (PredictionsTable's contract, scoring/batch.py)
PREDICTION_FIELDS = ("transaction_id", "event_time", "scored_at", "decision", "score")
OPTIONAL_PREDICTION_FIELDS = ("model_version", "guard", "challenger_version", "challenger_score")
FEATURE_FIELDS = ("feature_schema", "card_age_s")
NO_FEATURES = "features_not_found"  # the row's `missing`: FeaturesTable had no item


def log_row(prediction: Mapping[str, Any], features: Mapping[str, Any] | None) -> dict[str, Any]:
    """One row: the prediction's fields, and the features it was scored from (or why none)."""
    row = {name: prediction[name] for name in PREDICTION_FIELDS}
    row |= {name: prediction[name] for name in OPTIONAL_PREDICTION_FIELDS if name in prediction}
    if features is None:
        return row | {"features": None, "missing": NO_FEATURES}
    row |= {name: features[name] for name in FEATURE_FIELDS if name in features}
    row["features"] = {str(k): float(v) for k, v in features["features"].items()}
    return row


def scored_date(row: Mapping[str, Any]) -> str:
    return str(row["scored_at"])[:10]


def object_key(date: str, first_sequence_number: str, event_ids: Sequence[str]) -> str:
    digest = hashlib.blake2b("\n".join(event_ids).encode(), digest_size=8).hexdigest()
    return f"{LOG_PREFIX}date={date}/{first_sequence_number}-{digest}.jsonl.gz"


def date_prefix(date: str) -> str:
    return f"{LOG_PREFIX}date={date}/"


def encode(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """JSON lines, gzip without a timestamp: the same rows always give the same bytes."""
    text = "".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in rows)
    return gzip.compress(text.encode(), mtime=0)


def decode(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gzip.decompress(body).decode().splitlines() if line]


def first_rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """One row per transaction: the first scored (a retried batch may have logged it twice)."""
    first: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        kept = first.get(row["transaction_id"])
        if kept is None or (row["scored_at"], row.get("model_version", "")) < (
            kept["scored_at"],
            kept.get("model_version", ""),
        ):
            first[row["transaction_id"]] = row
    return first
