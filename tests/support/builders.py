"""Transactions, feature records and Kinesis records and events, as the tests build them.

`transaction` is a valid transaction whose fields vary with its index; `simple_transaction`
one whose fields do not (but its id, amount and time). `entry` / `raw_entry` make the
Kinesis entries of `kinesis_event` (embedded.lambda_events), `stream_records` the
StreamRecords a stage gets from such an event. `sequences`, `from_sequence` and `failures`
read an event and a handler's response as Lambda does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from embedded.lambda_events import KinesisEntry, kinesis_event
from streamscore.core.records import StreamRecord, parse_kinesis_event
from streamscore.preprocess.features import FEATURE_NAMES, FEATURE_SCHEMA

SHARD = "shardId-000000000000"
CET = timezone(timedelta(hours=1))
T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=CET)  # the transactions' first event time
ARRIVAL = 1_772_442_000.25  # when the records reached the stream (epoch seconds)


# ----------------------------------------------------------------------------- transactions


def transaction(index: int, card: str, minutes: float = 0.0, **overrides: Any) -> dict[str, Any]:
    """A valid transaction `minutes` after T0, its merchant, amount, country, mcc and channel varied by `index`."""
    return {
        "transaction_id": f"txn-{index:05d}",
        "card_id": card,
        "merchant_id": f"m_{index % 7}",
        "amount": round(5.0 + (index * 37) % 400 + 0.25, 2),
        "currency": "EUR",
        "country": "DE" if index % 5 else "FR",
        "mcc": "5411" if index % 3 else "7995",
        "channel": ("pos", "ecom", "atm", "moto")[index % 4],
        "event_time": (T0 + timedelta(minutes=minutes)).isoformat(timespec="seconds"),
    } | overrides


def simple_transaction(
    index: int, card: str = "card_a", minutes: int = 0, **overrides: Any
) -> dict[str, Any]:
    """A valid transaction `t{index}` of 20 + index EUR at one merchant, `minutes` after T0."""
    return {
        "transaction_id": f"t{index}",
        "card_id": card,
        "merchant_id": "m_1",
        "amount": 20.0 + index,
        "currency": "EUR",
        "country": "DE",
        "mcc": "5411",
        "channel": "pos",
        "event_time": f"2026-03-02T10:{minutes:02d}:00+01:00",
    } | overrides


def encoded(txn: Mapping[str, Any]) -> bytes:
    return json.dumps(txn).encode()


# ----------------------------------------------------------------------------- feature records


def feature_record(index: int, amount_log: float, **changes: Any) -> dict[str, Any]:
    """A feature record `t{index:05d}`: every feature 0 but amount_log, arrived 2026-03-05 12:29:59.5 UTC."""
    features = dict.fromkeys(FEATURE_NAMES, 0.0) | {"amount_log": amount_log}
    return {
        "transaction_id": f"t{index:05d}",
        "card_id": f"card_{index % 7}",
        "event_time": "2026-03-05T12:00:00+00:00",
        "feature_schema": FEATURE_SCHEMA,
        "features": features,
        "source_sequence_number": str(index),
        "source_shard_id": SHARD,
        "arrived_at": "2026-03-05T12:29:59.500+00:00",
        "ingested_at": "2026-03-05T12:29:59.700+00:00",
    } | changes


# ----------------------------------------------------------------------------- Kinesis


def entry(txn: Mapping[str, Any]) -> KinesisEntry:
    """The Kinesis entry of a transaction (or a feature record): keyed by its card, as JSON."""
    return KinesisEntry(str(txn["card_id"]), json.dumps(txn).encode(), arrival=ARRIVAL)


def raw_entry(data: bytes, key: str = "card_bad") -> KinesisEntry:
    return KinesisEntry(key, data, arrival=ARRIVAL)


def stream_records(
    payloads: Sequence[bytes | str],
    stream: str,
    shard_id: str = SHARD,
    first_index: int = 0,
    key: str = "pk",
) -> list[StreamRecord]:
    """Records as parse_kinesis_event makes them; a str payload is delivered as raw (non-base64) text."""
    entries = [
        KinesisEntry(key, data_b64=p) if isinstance(p, str) else KinesisEntry(key, p)
        for p in payloads
    ]
    return parse_kinesis_event(kinesis_event(entries, stream, shard_id, first_index))


def sequences(event: Mapping[str, Any]) -> list[str]:
    return [r["kinesis"]["sequenceNumber"] for r in event["Records"]]


def from_sequence(event: Mapping[str, Any], sequence: str) -> dict[str, Any]:
    """The batch Kinesis delivers next after a partial failure: from `sequence` on, same positions."""
    records = event["Records"]
    start = next(i for i, r in enumerate(records) if r["kinesis"]["sequenceNumber"] == sequence)
    return {"Records": records[start:]}


def failures(result: Mapping[str, Any]) -> list[str]:
    """The sequence numbers a handler's response reports failed, in its order."""
    return [f["itemIdentifier"] for f in result["batchItemFailures"]]
