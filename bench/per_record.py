"""What the handlers are measured against: the floor of scoring, and record-at-a-time implementations.

- score floor: what no scorer of a batch can avoid: base64 + JSON decode of every record, the
  float32 matrix in model order and one model run;
- per-record preprocess: per transaction one strongly consistent GetItem of the card's state,
  the same features and state update, PutItem of the features, PutRecord to the features stream
  and PutItem of the state (a bad record: one PutItem to quarantine);
- per-record score: per record decode, one model run on one row, PutEvents when declined, one
  PutItem of the prediction.

Both build their items with the project's own conversions (to_item_value, serialize) and call
real boto3 clients, so they pay botocore exactly as the handlers do; only batching differs.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np

from streamscore.aws.dynamodb import deserialize, serialize
from streamscore.core.artifacts import Thresholds
from streamscore.core.errors import InvalidRecordError
from streamscore.core.feature_record import encode_feature_record
from streamscore.core.items import from_item_value, to_item_value
from streamscore.core.records import parse_kinesis_event, quarantine_item
from streamscore.preprocess.batch import decode_transaction, feature_record
from streamscore.preprocess.features import (
    CardState,
    advance_state,
    build_features,
    card_age_seconds,
)
from streamscore.scoring.batch import ALERT_DETAIL_TYPE, ALERT_SOURCE, alert_detail
from streamscore.scoring.model import DECISIONS, ScoringModel, decide

DAY = 86400


def score_floor(model: ScoringModel, event: dict[str, Any]) -> Any:
    names = model.feature_names
    docs = [json.loads(base64.b64decode(r["kinesis"]["data"])) for r in event["Records"]]
    matrix = np.array([[d["features"][n] for n in names] for d in docs], dtype=np.float32)
    return model.predict(matrix)


def score_per_record(
    model: ScoringModel,
    thresholds: Thresholds,
    event: dict[str, Any],
    dynamodb: Any,
    events: Any,
    table: str,
    bus: str,
    now: datetime,
) -> None:
    names = model.feature_names
    for record in parse_kinesis_event(event):
        doc = json.loads(base64.b64decode(record.data_b64))
        row = np.array([[doc["features"][n] for n in names]], dtype=np.float32)
        score = model.predict(row)
        decision = DECISIONS[int(decide(score, thresholds)[0])]
        prediction = {
            "transaction_id": doc["transaction_id"],
            "score": Decimal(repr(float(score[0]))),
            "decision": decision,
            "model_version": model.model_version,
            "event_time": doc["event_time"],
            "scored_at": now.isoformat(timespec="milliseconds"),
            "features_record_id": record.record_id,
            "expires_at": int(now.timestamp()) + 90 * DAY,
        }
        if decision == "decline":
            detail = alert_detail(prediction | {"score": float(score[0])})
            events.put_events(
                Entries=[
                    {
                        "Source": ALERT_SOURCE,
                        "DetailType": ALERT_DETAIL_TYPE,
                        "Detail": json.dumps(detail, separators=(",", ":")),
                        "EventBusName": bus,
                    }
                ]
            )
        dynamodb.put_item(TableName=table, Item=serialize(prediction))


def preprocess_per_record(
    event: dict[str, Any],
    dynamodb: Any,
    kinesis: Any,
    tables: dict[str, str],
    stream: str,
    now: datetime,
) -> None:
    expires = int(now.timestamp())
    for record in parse_kinesis_event(event):
        try:
            txn = decode_transaction(record)
        except InvalidRecordError as error:
            item = quarantine_item(record, error, "preprocess", now)
            dynamodb.put_item(TableName=tables["quarantine"], Item=serialize(to_item_value(item)))
            continue
        found = dynamodb.get_item(
            TableName=tables["state"],
            Key=serialize({"card_id": txn.card_id}),
            ConsistentRead=True,
        )
        state = (
            CardState.from_dict(from_item_value(deserialize(found["Item"])))
            if "Item" in found
            else None
        )
        features = build_features(txn, state)
        new_state = advance_state(state, txn)
        age = card_age_seconds(txn, state)
        record_out = feature_record(record, txn, features, new_state.txn_count, now, age)
        dynamodb.put_item(
            TableName=tables["features"],
            Item=serialize(to_item_value(record_out) | {"expires_at": expires + 7 * DAY}),
        )
        kinesis.put_record(
            StreamName=stream, PartitionKey=txn.card_id, Data=encode_feature_record(record_out)
        )
        dynamodb.put_item(
            TableName=tables["state"],
            Item=serialize(
                to_item_value(new_state.to_dict()) | {"expires_at": expires + 400 * DAY}
            ),
        )
