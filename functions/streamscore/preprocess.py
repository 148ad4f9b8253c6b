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

from streamscore.concurrency import submit_or_run
from streamscore.contracts import Transaction
from streamscore.errors import InvalidRecordError, RetryableError
from streamscore.features import FEATURE_SCHEMA, CardState, advance_state, build_features
from streamscore.monitoring import batch_item, settled
from streamscore.ports import MonitoringStore, QuarantineStore
from streamscore.records import (
    StreamRecord,
    decode_payload,
    diagnose_json,
    field_errors,
    iso_time,
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
    step_executor: Executor | None = None,
) -> PreprocessOutcome:
    """Process one batch; never raises for bad input, raises SystemicError for broken setup.

    `step_executor` runs the independent writes concurrently. It must not be the
    pool the adapters fan their calls out on: a step waiting on its own pool deadlocks.
    """
    outcome = PreprocessOutcome(records_in=len(records))
    failed = outcome.failed

    valid: list[tuple[StreamRecord, Transaction]] = []
    invalid: list[tuple[StreamRecord, InvalidRecordError]] = []
    for record in records:
        try:
            valid.append((record, decode_transaction(record)))
        except InvalidRecordError as error:
            invalid.append((record, error))

    plan = _apply_states(valid, ports, now, failed, outcome)
    stored = _load_stored(plan.seen_before, ports, failed)
    known = {a.feature_record["transaction_id"]: a.feature_record for a in plan.applied} | stored
    first_of = {t.transaction_id: r for r, t in plan.seen_before}  # where each id was met first
    first_of |= {a.feature_record["transaction_id"]: a.record for a in plan.applied}
    forward = [_Forward(a.record, a.feature_record) for a in plan.applied]
    for record, txn_id in [
        (r, t.transaction_id) for r, t in plan.seen_before
    ] + plan.in_batch_duplicates:
        if txn_id in known:
            forward.append(_Forward(record, known[txn_id]))
        elif first_of[txn_id].sequence_number in failed:
            failed.add(record.sequence_number)  # its original could not be read: retry both
        else:
            # applied before, but its features are gone (FeaturesTable TTL shorter than the replay)
            invalid.append(
                (
                    record,
                    InvalidRecordError(
                        "replay_features_missing",
                        "record was applied before but its stored features have expired",
                    ),
                )
            )
    forward.sort(key=lambda f: f.record.position)

    quarantine_items = [quarantine_item(r, e, STAGE, now, quarantine_ttl_days) for r, e in invalid]
    records_of_txn: dict[str, list[StreamRecord]] = defaultdict(list)
    for entry in forward:
        records_of_txn[entry.feature_record["transaction_id"]].append(entry.record)
    records_of_id = {r.record_id: [r] for r, _ in invalid}

    steps: list[
        tuple[Callable[[], set[str]], dict[str, list[StreamRecord]], list[StreamRecord]]
    ] = [
        (lambda: ports.quarantine.save(quarantine_items), records_of_id, [r for r, _ in invalid]),
        (
            lambda: ports.features.save([a.feature_record for a in plan.applied], now),
            records_of_txn,
            [a.record for a in plan.applied],
        ),
        (
            lambda: ports.forwarder.forward([f.feature_record for f in forward]),
            records_of_txn,
            [f.record for f in forward],
        ),
    ]
    futures = [submit_or_run(step_executor, step) for step, _, _ in steps]
    for future, (_, records_of, step_records) in zip(futures, steps, strict=True):
        try:
            not_done = future.result()
        except RetryableError:
            failed.update(r.sequence_number for r in step_records)
            continue
        failed.update(r.sequence_number for key in not_done for r in records_of[key])
    # a duplicate stands or falls with the record it repeats
    failed.update(
        r.sequence_number
        for r, txn_id in plan.in_batch_duplicates
        if first_of[txn_id].sequence_number in failed
    )

    _save_states(plan.applied, plan.card_order, ports, now, failed, outcome)
    _record_stats(records, invalid, ports, now, monitoring_ttl_days, failed)

    def ok(record: StreamRecord) -> bool:
        return record.sequence_number not in failed

    outcome.features_written = sum(1 for a in plan.applied if ok(a.record))
    outcome.replayed = len(plan.seen_before) + len(plan.in_batch_duplicates)
    outcome.forwarded = sum(1 for f in forward if ok(f.record))
    outcome.quarantined = Counter(e.reason for r, e in invalid if ok(r))
    return outcome


@dataclass
class _Forward:
    record: StreamRecord
    feature_record: dict[str, Any]


@dataclass
class _StatePlan:
    applied: list[_Applied] = field(default_factory=list)
    seen_before: list[tuple[StreamRecord, Transaction]] = field(default_factory=list)
    in_batch_duplicates: list[tuple[StreamRecord, str]] = field(
        default_factory=list
    )  # → original id
    card_order: list[str] = field(default_factory=list)


def _apply_states(
    valid: list[tuple[StreamRecord, Transaction]],
    ports: PreprocessPorts,
    now: datetime,
    failed: set[str],
    outcome: PreprocessOutcome,
) -> _StatePlan:
    """Read the cards' states once, then apply the records in sequence order per card.

    A record is not applied again when its position is at or below the card's
    last applied sequence number (a Lambda retry or a replay), or when its
    transaction id was applied recently (a producer that sent it twice).
    """
    plan = _StatePlan(card_order=list(dict.fromkeys(t.card_id for _, t in valid)))
    outcome.cards_read = len(plan.card_order)
    try:
        states, unread = ports.states.load(plan.card_order) if plan.card_order else ({}, set())
    except RetryableError:
        states, unread = {}, set(plan.card_order)
    seen_here: set[str] = set()  # transaction ids met earlier in this batch
    for record, txn in sorted(valid, key=lambda pair: pair[0].position):
        if txn.card_id in unread:
            failed.add(record.sequence_number)
            continue
        state = states.get(txn.card_id)
        last = state.last_sequence_number if state else None
        if txn.transaction_id in seen_here:
            plan.in_batch_duplicates.append((record, txn.transaction_id))
            continue
        seen_here.add(txn.transaction_id)
        if (last is not None and record.position <= int(last)) or (
            state is not None and txn.transaction_id in state.recent_transaction_ids
        ):
            plan.seen_before.append((record, txn))
        else:
            features = build_features(txn, state)
            states[txn.card_id] = advance_state(state, txn, record.sequence_number)
            applied = _Applied(
                record, feature_record(record, txn, features, now), states[txn.card_id]
            )
            plan.applied.append(applied)
    return plan


def _load_stored(
    seen_before: list[tuple[StreamRecord, Transaction]], ports: PreprocessPorts, failed: set[str]
) -> dict[str, dict[str, Any]]:
    """The stored feature records of transactions applied before this batch."""
    if not seen_before:
        return {}
    ids = list(dict.fromkeys(t.transaction_id for _, t in seen_before))
    try:
        stored, unread = ports.features.load(ids)
    except RetryableError:
        stored, unread = {}, set(ids)
    failed.update(r.sequence_number for r, t in seen_before if t.transaction_id in unread)
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
    """One MonitoringTable item per batch, over the records Kinesis will not deliver again."""
    counted = settled(records, failed)
    if not counted:
        return
    positions = {r.sequence_number for r in counted}
    reasons = Counter(e.reason for r, e in invalid if r.sequence_number in positions)
    item = batch_item("STATS", STAGE, counted, now, ttl_days) | {
        "quarantined": sum(reasons.values()),
        "quarantined_by_reason": dict(reasons),
    }
    try:
        ports.monitoring.put(item)
    except RetryableError:
        # without its stats the batch must be seen again: fail it from its first record
        failed.add(counted[0].sequence_number)
