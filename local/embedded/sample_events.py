"""Generate events/: sample events for every function, from the simulator, as Lambda delivers them.

`python -m embedded.sample_events [--out events]` (or `make events`) rewrites
the files; `sample_events()` returns them, so a test can check they are current.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from embedded.aggregation import aggregated_entry, corrupt_digest
from embedded.lambda_events import (
    KinesisEntry,
    bus_event,
    kinesis_event,
    scheduled_event,
    sequence_number,
)
from simulator import SimulationConfig, encode_transaction, invalid_payloads, simulate
from streamscore.core.aggregation import UserRecord
from streamscore.core.feature_record import encode_feature_record
from streamscore.core.ids import SequenceNumber
from streamscore.core.records import StreamRecord
from streamscore.preprocess.batch import feature_record
from streamscore.preprocess.contracts import Transaction
from streamscore.preprocess.features import advance_state, build_features, card_age_seconds

SEED = 20261121
TRANSACTIONS_STREAM = "streamscore-TransactionsStream-EXAMPLE"
FEATURES_STREAM = "streamscore-FeaturesStream-EXAMPLE"
LABELS_STREAM = "streamscore-LabelsStream-EXAMPLE"
SHARD = "shardId-000000000000"
ARRIVAL_DELAY_SECONDS = 0.35  # producer to stream
BATCH_SIZE = 12


def _pick_transactions() -> tuple[list[dict[str, Any]], list[Transaction]]:
    """A short slice of simulated traffic with its history, containing fraud, in event-time order."""
    chosen, history, _ = _slice()
    return chosen, history


def _slice() -> tuple[list[dict[str, Any]], list[Transaction], list[bool]]:
    """The slice, its history, and which of the slice's transactions are fraud."""
    batch = simulate(SimulationConfig(seed=SEED, n_cards=80, days=6.0))
    frauds = [i for i, label in enumerate(batch.labels) if label.is_fraud]
    end = frauds[len(frauds) // 2] + 1 if frauds else len(batch.transactions)
    start = max(0, end - BATCH_SIZE)
    history = [
        Transaction.model_validate_json(encode_transaction(t)) for t in batch.transactions[:start]
    ]
    flags = [label.is_fraud for label in batch.labels[start:end]]
    return batch.transactions[start:end], history, flags


def _arrival(txn: dict[str, Any]) -> float:
    return datetime.fromisoformat(txn["event_time"]).timestamp() + ARRIVAL_DELAY_SECONDS


def preprocess_event() -> dict[str, Any]:
    chosen, _ = _pick_transactions()
    entries = [
        KinesisEntry(t["card_id"], encode_transaction(t), arrival=_arrival(t)) for t in chosen
    ]
    bad = invalid_payloads(np.random.default_rng(SEED), 2)
    last_arrival = entries[-1].arrival
    # bad records sit in the middle: the batch must go on past them
    entries.insert(len(entries) // 2, KinesisEntry("card_bad", bad[0][0], arrival=last_arrival))
    entries.append(KinesisEntry("card_bad", bad[1][0], arrival=last_arrival))
    return kinesis_event(entries, TRANSACTIONS_STREAM, SHARD)


def preprocess_aggregated_event() -> dict[str, Any]:
    """The same slice as a KPL producer puts it: plain records and aggregates of user records.

    In order: a plain record, an aggregate of 5 transactions, an aggregate of 3 with an invalid
    user record in the middle (quarantined alone), a plain record, and an aggregate of 2 whose
    MD5 digest is corrupt (quarantined whole as `invalid_aggregate`).
    """
    chosen, _ = _pick_transactions()
    users = [UserRecord(t["card_id"], encode_transaction(t)) for t in chosen]
    bad = invalid_payloads(np.random.default_rng(SEED), 1)[0][0]
    arrival = [_arrival(t) for t in chosen]
    with_bad = [*users[6:8], UserRecord("card_bad", bad), users[8]]
    damaged = aggregated_entry(users[10:12], arrival[11])
    entries = [
        KinesisEntry(users[0].partition_key, users[0].data, arrival=arrival[0]),
        aggregated_entry(users[1:6], arrival[5]),
        aggregated_entry(with_bad, arrival[8]),
        KinesisEntry(users[9].partition_key, users[9].data, arrival=arrival[9]),
        KinesisEntry(damaged.partition_key, corrupt_digest(damaged.data), arrival=arrival[11]),
    ]
    return kinesis_event(entries, TRANSACTIONS_STREAM, SHARD)


def score_event() -> dict[str, Any]:
    """The FeaturesStream records preprocess forwards for the same slice, plus one unknown schema."""
    chosen, history = _pick_transactions()
    states: dict[str, Any] = {}
    for txn in history:
        states[txn.card_id] = advance_state(states.get(txn.card_id), txn)
    entries = []
    for index, raw in enumerate(chosen):
        txn = Transaction.model_validate_json(encode_transaction(raw))
        source = StreamRecord(
            TRANSACTIONS_STREAM,
            SHARD,
            SequenceNumber(sequence_number(index)),
            txn.card_id,
            "",
            _arrival(raw),
        )
        features = build_features(txn, states.get(txn.card_id))
        age = card_age_seconds(txn, states.get(txn.card_id))
        states[txn.card_id] = advance_state(states.get(txn.card_id), txn)
        ingested = datetime.fromtimestamp(_arrival(raw) + 0.2, UTC)
        item = feature_record(source, txn, features, states[txn.card_id].txn_count, ingested, age)
        entries.append(
            KinesisEntry(txn.card_id, encode_feature_record(item), arrival=_arrival(raw) + 0.3)
        )
    stale = json.loads(entries[0].data) | {
        "transaction_id": "schema_mismatch_example",
        "feature_schema": "card-v0",
    }
    entries.insert(
        len(entries) // 2,
        KinesisEntry(stale["card_id"], json.dumps(stale).encode(), arrival=entries[-1].arrival),
    )
    return kinesis_event(entries, FEATURES_STREAM, SHARD)


def labels_event() -> dict[str, Any]:
    """Labels of the same slice, as production learns them: a chargeback of each fraud, an
    analyst's outcome for one legitimate transaction, a chargeback reversed, a label of a
    transaction never scored, and one record that is no label."""
    chosen, _, flags = _slice()
    frauds = [t for t, fraud in zip(chosen, flags, strict=True) if fraud]
    legit = next(t for t, fraud in zip(chosen, flags, strict=True) if not fraud)
    last = max(_arrival(t) for t in chosen)

    def at(txn: dict[str, Any], days: float) -> str:
        moment = datetime.fromisoformat(txn["event_time"]) + timedelta(days=days)
        return moment.astimezone(UTC).isoformat()

    labels = [
        {
            "transaction_id": t["transaction_id"],
            "label": "fraud",
            "labelled_at": at(t, 21),
            "source": "chargeback",
        }
        for t in frauds
    ]
    labels += [
        {
            "transaction_id": legit["transaction_id"],
            "label": "legit",
            "labelled_at": at(legit, 1),
            "source": "review",
        },
        {
            "transaction_id": legit["transaction_id"],
            "label": "fraud",
            "labelled_at": at(legit, 30),
            "source": "chargeback",
        },
        {
            "transaction_id": legit["transaction_id"],
            "label": "legit",
            "labelled_at": at(legit, 45),
            "source": "reversal",
        },
        {
            "transaction_id": "never_scored_example",
            "label": "fraud",
            "labelled_at": at(legit, 20),
            "source": "cardholder",
        },
    ]
    entries = [
        KinesisEntry(x["transaction_id"], json.dumps(x).encode(), arrival=last + 86400 * 45)
        for x in labels
    ]
    entries.insert(
        2,
        KinesisEntry(
            legit["transaction_id"],
            json.dumps({"transaction_id": legit["transaction_id"], "label": "chargeback"}).encode(),
            arrival=last + 86400 * 45,
        ),
    )
    return kinesis_event(entries, LABELS_STREAM, SHARD)


# the shipped model's version (models/artifacts/model_card.json)
MODEL_VERSION = json.loads(
    (Path(__file__).resolve().parents[2] / "models" / "artifacts" / "model_card.json").read_text()
)["model_version"]


def drift_events() -> dict[str, dict[str, Any]]:
    hour = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
    window = {"start": (hour - timedelta(hours=24)).isoformat(), "end": hour.isoformat()}
    requested = {  # what the drift check puts (drift/report.py trigger_detail, trimmed)
        "trigger_id": f"{MODEL_VERSION}/20260303T1200Z--20260304T1200Z",
        "reason": "drift",
        "model_version": MODEL_VERSION,
        "window": window | {"minutes": 1440},
        "status": "drift",
    }
    return {
        "drift_check_scheduled.json": scheduled_event(hour.strftime("%Y-%m-%dT%H:%M:%SZ")),
        "drift_check_window.json": {"window": window},
        # PromotionCheckSchedule's constant Input is the whole event its target gets
        "promotion_check.json": {"check": "promotion"},
        "retraining_requested.json": bus_event(
            "RetrainingRequested",
            "streamscore.monitoring",
            requested,
            hour.strftime("%Y-%m-%dT%H:%M:%SZ"),
        ),
    }


def sample_events() -> dict[str, dict[str, Any]]:
    """File name → event, for every sample in events/."""
    return {
        "preprocess_transactions.json": preprocess_event(),
        "preprocess_aggregated.json": preprocess_aggregated_event(),
        "score_features.json": score_event(),
        "labels.json": labels_event(),
        **drift_events(),
    }


def render(event: dict[str, Any]) -> str:
    return json.dumps(event, indent=2, sort_keys=False) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("events"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, event in sample_events().items():
        (args.out / name).write_text(render(event))
        print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
