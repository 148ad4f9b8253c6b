"""Preprocess one Kinesis batch: validate, quarantine, apply per-card state, store and forward features.

Write order is the commit protocol. Quarantine, features (table and stream) come
first; a card's state is written last and only up to its first failed record,
remembering the last applied sequence number. A replayed record (at or below
that number) is not applied again: its stored features are forwarded instead,
so every retry or replay yields the same features and never double-counts state.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from streamscore.contracts import Transaction
from streamscore.errors import InvalidRecordError, RetryableError
from streamscore.features import FEATURE_SCHEMA, CardState, advance_state, build_features
from streamscore.monitoring import batch_item_key, window_key
from streamscore.records import (
    StreamRecord,
    decode_payload,
    diagnose_json,
    field_errors,
    iso_time,
    lowest_failure,
    quarantine_item,
)

STAGE = "preprocess"
MAX_TRANSACTION_BYTES = 16 * 1024  # a transaction is a few hundred bytes; more is not one


class StateStore(Protocol):
    def load(self, card_ids: Sequence[str]) -> tuple[dict[str, CardState], set[str]]:
        """States found, and card ids whose read still failed after retries."""
        ...

    def save(self, states: Sequence[CardState], now: datetime) -> set[str]:
        """Card ids whose write still failed after retries."""
        ...


class FeatureStore(Protocol):
    def load(
        self, transaction_ids: Sequence[str]
    ) -> tuple[dict[str, dict[str, Any]], set[str]]: ...

    def save(self, feature_records: Sequence[dict[str, Any]], now: datetime) -> set[str]:
        """Transaction ids whose write still failed after retries."""
        ...


class FeatureForwarder(Protocol):
    def forward(self, feature_records: Sequence[dict[str, Any]]) -> set[str]:
        """Transaction ids whose put still failed after retries."""
        ...


class QuarantineStore(Protocol):
    def save(self, items: Sequence[dict[str, Any]]) -> set[str]:
        """record_ids whose write still failed after retries."""
        ...


class MonitoringStore(Protocol):
    def put(self, item: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class PreprocessPorts:
    states: StateStore
    features: FeatureStore
    forwarder: FeatureForwarder
    quarantine: QuarantineStore
    monitoring: MonitoringStore


@dataclass
class PreprocessOutcome:
    """What happened to every record of the batch: forwarded, quarantined or failed (to be retried)."""

    records_in: int = 0
    forwarded: int = 0
    replayed: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    failed: set[str] = field(default_factory=set)  # sequence numbers
    cards_read: int = 0
    features_written: int = 0
    states_written: int = 0


@dataclass
class _Applied:
    record: StreamRecord
    feature_record: dict[str, Any]
    state_after: CardState


def decode_transaction(record: StreamRecord) -> Transaction:
    """The record's Transaction; InvalidRecordError with the reason when it is not one."""
    payload = decode_payload(record)
    if len(payload) > MAX_TRANSACTION_BYTES:
        raise InvalidRecordError(
            "oversized", f"payload is {len(payload)} bytes, more than {MAX_TRANSACTION_BYTES}"
        )
    try:
        return Transaction.model_validate_json(payload)
    except ValidationError as error:
        raise diagnose_json(payload) or field_errors(error) from None


def feature_record(
    record: StreamRecord, txn: Transaction, features: dict[str, float], now: datetime
) -> dict[str, Any]:
    """The Feature record contract: what FeaturesTable stores and FeaturesStream carries."""
    return {
        "transaction_id": txn.transaction_id,
        "card_id": txn.card_id,
        "event_time": txn.event_time.isoformat(),
        "feature_schema": FEATURE_SCHEMA,
        "features": features,
        "source_sequence_number": record.sequence_number,
        "source_shard_id": record.shard_id,
        "arrived_at": iso_time(record.arrived_at),
        "ingested_at": now.isoformat(timespec="milliseconds"),
    }


def encode_feature_record(item: dict[str, Any]) -> bytes:
    return json.dumps(item, separators=(",", ":"), allow_nan=False).encode()


def preprocess_batch(
    records: Sequence[StreamRecord],
    ports: PreprocessPorts,
    now: datetime,
    quarantine_ttl_days: int,
    monitoring_ttl_days: int,
    executor: Executor | None = None,
) -> PreprocessOutcome:
    """Process one batch; never raises for bad input, raises SystemicError for broken setup."""
    outcome = PreprocessOutcome(records_in=len(records))
    failed = outcome.failed

    valid: list[tuple[StreamRecord, Transaction]] = []
    invalid: list[tuple[StreamRecord, InvalidRecordError]] = []
    for record in records:
        try:
            valid.append((record, decode_transaction(record)))
        except InvalidRecordError as error:
            invalid.append((record, error))

    # Replayed records whose stored features are gone (TTL shorter than the replay) are kept too.
    applied, replayed, card_order = _apply_states(valid, ports, now, failed, outcome)
    stored = _load_replayed(replayed, ports, failed)
    for record, txn in replayed:
        if txn.transaction_id not in stored and record.sequence_number not in failed:
            invalid.append(
                (
                    record,
                    InvalidRecordError(
                        "replay_features_missing",
                        "record was applied before but its stored features are gone "
                        "(FeaturesTable TTL shorter than the stream replay)",
                    ),
                )
            )

    quarantine_items = [quarantine_item(r, e, STAGE, now, quarantine_ttl_days) for r, e in invalid]
    new_records = [a.feature_record for a in applied]
    to_forward = sorted(
        [(a.record.position, a.feature_record) for a in applied]
        + [
            (r.position, stored[t.transaction_id])
            for r, t in replayed
            if t.transaction_id in stored
        ],
        key=lambda pair: pair[0],
    )
    by_txn_id = {a.feature_record["transaction_id"]: a.record for a in applied}
    by_txn_id |= {t.transaction_id: r for r, t in replayed}
    by_record_id = {r.record_id: r for r, _ in invalid}

    # Independent writes, concurrently: quarantine, features table, features stream.
    jobs: list[tuple[Callable[[], set[str]], Callable[[str], StreamRecord], list[StreamRecord]]] = [
        (
            lambda: ports.quarantine.save(quarantine_items),
            by_record_id.__getitem__,
            [r for r, _ in invalid],
        ),
        (
            lambda: ports.features.save(new_records, now),
            by_txn_id.__getitem__,
            [a.record for a in applied],
        ),
        (
            lambda: ports.forwarder.forward([item for _, item in to_forward]),
            by_txn_id.__getitem__,
            [by_txn_id[item["transaction_id"]] for _, item in to_forward],
        ),
    ]
    futures = [
        (executor.submit(job) if executor else None, job, lookup, rs) for job, lookup, rs in jobs
    ]
    for future, job, lookup, step_records in futures:
        try:
            failed_ids = future.result() if future else job()
            failed.update(lookup(i).sequence_number for i in failed_ids)
        except RetryableError:
            failed.update(r.sequence_number for r in step_records)

    _save_states(applied, card_order, ports, now, failed, outcome)

    _record_stats(records, invalid, ports, now, monitoring_ttl_days, failed)

    def ok(record: StreamRecord) -> bool:
        return record.sequence_number not in failed

    outcome.features_written = sum(1 for a in applied if ok(a.record))
    outcome.replayed = len(replayed)
    outcome.forwarded = sum(1 for _, item in to_forward if ok(by_txn_id[item["transaction_id"]]))
    outcome.quarantined = Counter(e.reason for r, e in invalid if ok(r))
    return outcome


def _apply_states(
    valid: list[tuple[StreamRecord, Transaction]],
    ports: PreprocessPorts,
    now: datetime,
    failed: set[str],
    outcome: PreprocessOutcome,
) -> tuple[list[_Applied], list[tuple[StreamRecord, Transaction]], list[str]]:
    """Read the cards' states once, then apply the records in sequence order per card."""
    card_ids = list(dict.fromkeys(t.card_id for _, t in valid))
    outcome.cards_read = len(card_ids)
    try:
        states, unread = ports.states.load(card_ids) if card_ids else ({}, set())
    except RetryableError:
        states, unread = {}, set(card_ids)
    applied: list[_Applied] = []
    replayed: list[tuple[StreamRecord, Transaction]] = []
    for record, txn in sorted(valid, key=lambda pair: pair[0].position):
        if txn.card_id in unread:
            failed.add(record.sequence_number)
            continue
        state = states.get(txn.card_id)
        last = state.last_sequence_number if state else None
        if last is not None and record.position <= int(last):
            replayed.append((record, txn))
            continue
        features = build_features(txn, state)
        states[txn.card_id] = advance_state(state, txn, record.sequence_number)
        applied.append(
            _Applied(record, feature_record(record, txn, features, now), states[txn.card_id])
        )
    return applied, replayed, card_ids


def _load_replayed(
    replayed: list[tuple[StreamRecord, Transaction]], ports: PreprocessPorts, failed: set[str]
) -> dict[str, dict[str, Any]]:
    if not replayed:
        return {}
    ids = [t.transaction_id for _, t in replayed]
    try:
        stored, unread = ports.features.load(ids)
    except RetryableError:
        stored, unread = {}, set(ids)
    failed.update(r.sequence_number for r, t in replayed if t.transaction_id in unread)
    return stored


def _save_states(
    applied: list[_Applied],
    card_order: list[str],
    ports: PreprocessPorts,
    now: datetime,
    failed: set[str],
    outcome: PreprocessOutcome,
) -> None:
    """Write each card's state as of its last record before its first failure."""
    per_card: dict[str, list[_Applied]] = defaultdict(list)
    for item in applied:
        per_card[item.state_after.card_id].append(item)
    committed: dict[str, list[_Applied]] = {}
    for card_id in card_order:
        prefix: list[_Applied] = []
        for item in per_card.get(card_id, []):
            if item.record.sequence_number in failed:
                break
            prefix.append(item)
        if prefix:
            committed[card_id] = prefix
    if not committed:
        return
    try:
        unsaved = ports.states.save([items[-1].state_after for items in committed.values()], now)
    except RetryableError:
        unsaved = set(committed)
    for card_id in unsaved:
        # the card's state did not move: its records must be applied again
        failed.update(item.record.sequence_number for item in committed[card_id])
    outcome.states_written = len(committed) - len(unsaved)


def _record_stats(
    records: Sequence[StreamRecord],
    invalid: list[tuple[StreamRecord, InvalidRecordError]],
    ports: PreprocessPorts,
    now: datetime,
    ttl_days: int,
    failed: set[str],
) -> None:
    """One MonitoringTable item per batch: counts of the records Kinesis will not deliver again.

    Kinesis resumes at the lowest failed sequence number, so only the records
    below it are counted here; the retry's own item counts the rest.
    """
    if not records:
        return
    resume_at = lowest_failure(records, failed)
    counted = [r for r in records if resume_at is None or r.position < resume_at]
    if not counted:
        return
    reasons = Counter(e.reason for r, e in invalid if resume_at is None or r.position < resume_at)
    first = counted[0]
    item = batch_item_key("STATS", first.stream_name, first.shard_id, first.sequence_number) | {
        "window_key": window_key("STATS", now),
        "recorded_at": now.isoformat(timespec="milliseconds"),
        "stage": STAGE,
        "first_sequence_number": first.sequence_number,
        "last_sequence_number": counted[-1].sequence_number,
        "records": len(counted),
        "quarantined": sum(reasons.values()),
        "quarantined_by_reason": dict(reasons),
        "expires_at": int(now.timestamp()) + ttl_days * 86400,
    }
    try:
        ports.monitoring.put(item)
    except RetryableError:
        # without its stats the batch must be seen again: fail it from its first record
        failed.add(first.sequence_number)
