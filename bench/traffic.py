"""Benchmark traffic from the simulator: Kinesis batches of transactions and of feature records.

A large card population (20,000 cards over 3 days) so that, as in production, nearly every
record of a batch is a different card; the cards' states after the first part of the period
are what EntityStateTable holds when the measured records arrive. As preprocess leaves them: a
card's item carries, in `pending`, the feature record of its last transaction (the state commits
before the record is stored, and the next batch of that card drops it once the ledger shows it
stored), and FeaturesTable holds that record (`ledger_items`).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from embedded.lambda_events import KinesisEntry, kinesis_event
from simulator import SimulationConfig, encode_transaction, inject_invalid, simulate
from streamscore.aws.dynamodb import serialize
from streamscore.aws.preprocess_stores import DynamoFeatureStore, DynamoStateStore
from streamscore.core.feature_record import FeatureRecord, encode_feature_record
from streamscore.core.ids import SequenceNumber
from streamscore.core.records import StreamRecord
from streamscore.preprocess.batch import feature_record
from streamscore.preprocess.contracts import Transaction
from streamscore.preprocess.features import (
    CardState,
    advance_state,
    build_features,
    card_age_seconds,
)
from streamscore.preprocess.ports import CardRecord

SEED = 11
N_CARDS = 20_000
DAYS = 3.0
INVALID_RATE = 0.01  # the local run's default share of invalid records
TRANSACTIONS_STREAM = "bench-transactions"
FEATURES_STREAM = "bench-features-stream"
SHARD = "shardId-000000000000"
STATE_TTL_DAYS = 400
FEATURES_TTL_DAYS = 7
MEASURED = 8_000  # the period's last transactions; the benchmarks take prefixes of them


@dataclass(frozen=True)
class Window:
    """The measured transactions (the period's last ones) and the card states before them."""

    transactions: list[Transaction]
    payloads: list[bytes]  # their encodings, in order
    states: dict[str, CardState]
    features: list[dict[str, float]]  # each transaction's features given the states
    versions: list[int]  # each transaction's card state version (txn_count) after it
    ages: list[float]  # each transaction's card age (seconds since the card's first)
    last: dict[str, tuple[Transaction, CardState | None]]  # each card's last earlier transaction


@functools.cache
def window() -> Window:
    simulated = simulate(SimulationConfig(seed=SEED, n_cards=N_CARDS, days=DAYS))
    raw = simulated.transactions
    states: dict[str, CardState] = {}
    last: dict[str, tuple[Transaction, CardState | None]] = {}
    history, measured = raw[:-MEASURED], raw[-MEASURED:]
    for item in history:
        txn = Transaction.model_validate_json(encode_transaction(item))
        last[txn.card_id] = (txn, states.get(txn.card_id))
        states[txn.card_id] = advance_state(states.get(txn.card_id), txn)
    before = dict(states)
    transactions, features, versions, ages = [], [], [], []
    for item in measured:
        txn = Transaction.model_validate_json(encode_transaction(item))
        transactions.append(txn)
        features.append(build_features(txn, states.get(txn.card_id)))
        ages.append(card_age_seconds(txn, states.get(txn.card_id)))
        states[txn.card_id] = advance_state(states.get(txn.card_id), txn)
        versions.append(states[txn.card_id].txn_count)
    payloads = [encode_transaction(t) for t in measured]
    return Window(transactions, payloads, before, features, versions, ages, last)


class _Captured:
    """A BatchTable that keeps what the stores would write (their own item conversion runs)."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def put_many(self, items: Any) -> list[Any]:
        self.items += [serialize(i) for i in items]
        return []


def last_records(
    states: dict[str, CardState], now: datetime, cards: set[str] | None = None
) -> dict[str, FeatureRecord]:
    """Per card (only `cards`, when given): the feature record of its last earlier transaction,
    as preprocess made it."""
    records: dict[str, FeatureRecord] = {}
    for card_id in states:
        if cards is not None and card_id not in cards:
            continue
        txn, state = window().last[card_id]
        after = advance_state(state, txn)
        source = StreamRecord(
            TRANSACTIONS_STREAM, SHARD, SequenceNumber("1"), card_id, "", now.timestamp() - 60
        )
        records[card_id] = feature_record(
            source,
            txn,
            build_features(txn, state),
            after.txn_count,
            now,
            card_age_seconds(txn, state),
        )
    return records


def state_items(
    states: dict[str, CardState], now: datetime, cards: set[str] | None = None
) -> list[dict[str, Any]]:
    """EntityStateTable items (wire format) as the state store writes them, each with its last
    transaction's feature record pending (only `cards`, when given)."""
    table = _Captured()
    records = [
        CardRecord(states[card_id], {record["transaction_id"]: record})
        for card_id, record in last_records(states, now, cards).items()
    ]
    DynamoStateStore(table, STATE_TTL_DAYS).save(records, now)  # type: ignore[arg-type]
    return table.items


def ledger_items(
    states: dict[str, CardState], now: datetime, cards: set[str] | None = None
) -> list[dict[str, Any]]:
    """FeaturesTable items of those pending records: stored, as the next batch finds them."""
    table = _Captured()
    records = list(last_records(states, now, cards).values())
    DynamoFeatureStore(table, FEATURES_TTL_DAYS).save(records, now)  # type: ignore[arg-type]
    return table.items


def transaction_events(
    batch_size: int, batches: int = 1, records: int | None = None
) -> list[dict[str, Any]]:
    """Consecutive TransactionsStream batches (`batches` full ones, or `records` records): the
    window's transactions with invalid records interleaved, partition key = card id, sequence
    numbers growing along the shard."""
    needed = records or batch_size * batches
    win = window()
    mixed = inject_invalid(win.payloads, np.random.default_rng(SEED), INVALID_RATE)[:needed]
    if len(mixed) < needed:
        raise ValueError(f"{needed} records asked for, the window has {len(mixed)}")
    entries = []
    for payload, category in mixed:
        key = "card_bad" if category is not None else json.loads(payload)["card_id"]
        entries.append(KinesisEntry(key, payload, arrival=1_772_442_000.0))
    return [
        kinesis_event(entries[i : i + batch_size], TRANSACTIONS_STREAM, SHARD, first_index=i)
        for i in range(0, needed, batch_size)
    ]


def feature_events(batch_size: int, batches: int) -> list[dict[str, Any]]:
    """Consecutive FeaturesStream batches: the feature records preprocess forwards for the window."""
    needed = batch_size * batches
    win = window()
    if needed > len(win.transactions):
        raise ValueError(f"{needed} feature records asked for, the window has {MEASURED}")
    entries = []
    rows = zip(
        win.transactions[:needed],
        win.features[:needed],
        win.versions[:needed],
        win.ages[:needed],
        strict=True,
    )
    for index, (txn, features, version, age) in enumerate(rows):
        arrived = txn.event_time.timestamp() + 0.3
        source = StreamRecord(
            TRANSACTIONS_STREAM, SHARD, SequenceNumber(str(index)), txn.card_id, "", arrived
        )
        now = datetime.fromtimestamp(arrived + 0.2, UTC)
        payload = encode_feature_record(feature_record(source, txn, features, version, now, age))
        entries.append(KinesisEntry(txn.card_id, payload, arrival=arrived + 0.25))
    return [
        kinesis_event(entries[i : i + batch_size], FEATURES_STREAM, SHARD, first_index=i)
        for i in range(0, needed, batch_size)
    ]


def distinct_cards(event: dict[str, Any]) -> int:
    return len({r["kinesis"]["partitionKey"] for r in event["Records"]} - {"card_bad"})
