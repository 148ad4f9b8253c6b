"""Preprocess one Kinesis batch: validate, quarantine, apply per-card state, store and forward features.

Effectively once, by transaction id, whatever the batch boundaries, the shard or the retry:

1. A transaction is *applied* when its card's state item says so: the state write
   commits it and carries its feature record in `pending` until FeaturesTable holds it.
   FeaturesTable is written only after that commit, so a FeaturesTable item (or a
   pending entry) for a transaction id means "applied", exactly: the ledger.
2. Before applying, the batch reads its cards' states and the ledger for every
   transaction id of the batch (and for the cards' pending ids, to drop the stored ones).
   An id found with the same content is a replay or a producer's repeat: its stored
   features are forwarded again, its card is not touched. An id found with other
   content is a conflicting duplicate: the first version wins, the other is quarantined.
3. Per card, records are applied in stream order, and the state commits only up to the
   card's first failed record: nothing of a card after a failure is committed or forwarded.
4. After the commit, the feature records go to FeaturesTable, then those it holds (and the
   replayed ones) to FeaturesStream: nothing is scored that the ledger does not hold. A
   failure there fails the record; its retry finds it applied (pending or stored) and finishes.

No stream position is compared, so a resharded stream, a replay with other batch
boundaries and a re-drive of a range Lambda gave up on (possibly long after later
records of the same card) all find the same answer. Feature items live at least as
long as the stream keeps records, so every record that can be replayed finds its entry.

The user records of a KPL aggregate are records of their own here (records.py), in
sub-sequence order, but fail together: `failed` holds Kinesis sequence numbers, so once
one user record fails its siblings count as failed too (those not yet applied are not
applied, which blocks their cards like any failure), and the redelivered aggregate finds
the ones already applied in the ledger.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from streamscore.core.errors import InvalidRecordError, RetryableError
from streamscore.core.feature_record import FeatureRecord
from streamscore.core.ids import CardId, SequenceNumber, TransactionId
from streamscore.core.items import MIN_MAGNITUDE
from streamscore.core.records import StreamRecord, decode_contract, quarantine_item
from streamscore.core.steps import settle, submit_or_run
from streamscore.core.times import iso_time, utc_iso_ms
from streamscore.preprocess.contracts import Transaction
from streamscore.preprocess.features import (
    FEATURE_SCHEMA,
    advance_state,
    build_features,
    card_age_seconds,
)
from streamscore.preprocess.ports import CardRecord, PreprocessPorts

STAGE = "preprocess"
MAX_TRANSACTION_BYTES = 16 * 1024  # a transaction is a few hundred bytes; more is not one
CONFLICTING_DUPLICATE = "conflicting_duplicate"


@dataclass
class PreprocessOutcome:
    """What happened to every record of the batch: applied, replayed, repeated, quarantined or failed."""

    records_in: int = 0
    applied: int = 0  # transactions applied to their card's state by this invocation
    forwarded: int = 0  # feature records put on FeaturesStream (applied and replayed)
    replayed: int = 0  # records of transactions applied before (a retry, replay or repeat)
    repeats: int = 0  # records repeating a transaction met earlier in this batch
    quarantined: Counter[str] = field(default_factory=Counter)
    failed: set[SequenceNumber] = field(default_factory=set)  # Kinesis sequence numbers
    cards_read: int = 0
    features_written: int = 0
    states_written: int = 0


def decode_transaction(record: StreamRecord) -> Transaction:
    """The record's Transaction; InvalidRecordError with the reason when it is not one."""
    return decode_contract(record, Transaction, MAX_TRANSACTION_BYTES)


def transaction_digest(txn: Transaction) -> str:
    """The transaction's content, canonical: two records repeat each other when their digests match."""
    return hashlib.sha256(txn.model_dump_json().encode()).hexdigest()[:32]


def storable(value: float) -> float:
    """`value` as DynamoDB keeps it: magnitudes below 1e-130 are zero, so stored and sent agree."""
    return 0.0 if abs(value) < MIN_MAGNITUDE else value


def feature_record(
    record: StreamRecord,
    txn: Transaction,
    features: dict[str, float],
    state_version: int,
    now: datetime,
    card_age_s: float,
) -> FeatureRecord:
    """The transaction's feature record (streamscore.core.feature_record)."""
    doc: FeatureRecord = {
        "transaction_id": txn.transaction_id,
        "card_id": txn.card_id,
        "event_time": txn.event_time.isoformat(),
        "feature_schema": FEATURE_SCHEMA,
        "features": {name: storable(value) for name, value in features.items()},
        "state_version": state_version,
        "card_age_s": storable(card_age_s),
        "transaction_digest": transaction_digest(txn),
        "source_sequence_number": record.sequence_number,
        "source_shard_id": record.shard_id,
        "arrived_at": iso_time(record.arrived_at),
        "ingested_at": utc_iso_ms(now),
    }
    if record.sub_sequence_number is not None:
        doc["source_sub_sequence_number"] = record.sub_sequence_number
    return doc


@dataclass
class _Valid:
    record: StreamRecord
    txn: Transaction
    digest: str


@dataclass
class _Plan:
    """What the batch does with each valid record, decided from the cards and the ledger."""

    applied: list[tuple[_Valid, FeatureRecord]] = field(default_factory=list)  # new, in order
    states: dict[str, CardRecord] = field(default_factory=dict)  # per card, after its applications
    recovered: list[tuple[_Valid, FeatureRecord]] = field(default_factory=list)  # pending, unstored
    replayed: list[tuple[_Valid, FeatureRecord]] = field(default_factory=list)  # stored before
    repeats: list[tuple[_Valid, _Valid]] = field(default_factory=list)  # (repeat, first)
    conflicts: list[tuple[StreamRecord, InvalidRecordError]] = field(default_factory=list)


def preprocess_batch(
    records: Sequence[StreamRecord],
    ports: PreprocessPorts,
    now: datetime,
    step_executor: Executor | None = None,
    pending_horizon: timedelta | None = None,
) -> PreprocessOutcome:
    """Process one batch; never raises for bad input, raises SystemicError for broken setup.

    `step_executor` runs the independent writes concurrently. It must not be the
    pool the adapters fan their calls out on: a step waiting on its own pool deadlocks.
    `pending_horizon`: a card's pending feature record older than this (the stream's
    retention and a day) is dropped at the card's next commit even when FeaturesTable no
    longer shows it (its item expired): no retry or re-drive can deliver its record again,
    so nothing can need it, and a card idle past the TTL does not carry it forever.
    """
    outcome = PreprocessOutcome(records_in=len(records))
    failed = outcome.failed
    valid, invalid = _decode_all(records)
    cards = _read_cards(valid, ports, failed, outcome)
    stored = _read_ledger(valid, cards, ports, failed)
    plan = _plan(valid, cards, stored, failed, now, pending_horizon)
    invalid += plan.conflicts

    # Phase 1: quarantine and the state commit, side by side.
    quarantine_items = [quarantine_item(r, e, STAGE, now) for r, e in invalid]
    quarantining = submit_or_run(step_executor, ports.quarantine.save, quarantine_items)
    committed = _commit_states(plan, ports, now, failed, outcome)
    settle(quarantining, {r.record_id: r for r, _ in invalid}, failed)

    # Phase 2: store what is applied, then forward it and what was applied before.
    to_store = [*committed, *plan.recovered]
    to_forward = sorted([*to_store, *plan.replayed], key=lambda pair: pair[0].record.order)
    _store_then_forward(ports, to_store, to_forward, now, failed)
    # a repeat stands or falls with the record it repeats
    failed.update(
        repeat.record.sequence_number
        for repeat, first in plan.repeats
        if first.record.sequence_number in failed
    )
    _tally(outcome, plan, committed, to_store, to_forward, invalid)
    return outcome


def _decode_all(
    records: Sequence[StreamRecord],
) -> tuple[list[_Valid], list[tuple[StreamRecord, InvalidRecordError]]]:
    """The batch's transactions in stream order, and its records that are none, with why."""
    valid: list[_Valid] = []
    invalid: list[tuple[StreamRecord, InvalidRecordError]] = []
    for record in sorted(records, key=lambda r: r.order):
        try:
            txn = decode_transaction(record)
        except InvalidRecordError as error:
            invalid.append((record, error))
        else:
            valid.append(_Valid(record, txn, transaction_digest(txn)))
    return valid, invalid


def _store_then_forward(
    ports: PreprocessPorts,
    to_store: list[tuple[_Valid, FeatureRecord]],
    to_forward: list[tuple[_Valid, FeatureRecord]],
    now: datetime,
    failed: set[SequenceNumber],
) -> None:
    """FeaturesTable, then FeaturesStream for the records it holds; each step fails the records
    it did not do.

    Only a record the ledger holds is forwarded, so what ScoreFunction scores is what
    FeaturesTable keeps. Side by side, a record whose table write failed could be scored and
    then lose its id to another card's version re-driven before it (a discarded range): the
    prediction and the stored features would be of two versions. The order costs one
    BatchWriteItem round trip per batch (docs/ARCHITECTURE.md, "Commit order").
    """
    by_txn = {v.txn.transaction_id: v.record for v, _ in to_forward}
    if to_store:
        stored = submit_or_run(None, ports.features.save, [doc for _, doc in to_store], now)
        settle(stored, by_txn, failed, [v.record for v, _ in to_store])
    ready = [(v, doc) for v, doc in to_forward if v.record.sequence_number not in failed]
    if ready:
        forwarded = submit_or_run(None, ports.forwarder.forward, [doc for _, doc in ready])
        settle(forwarded, by_txn, failed, [v.record for v, _ in ready])


def _tally(
    outcome: PreprocessOutcome,
    plan: _Plan,
    committed: list[tuple[_Valid, FeatureRecord]],
    to_store: list[tuple[_Valid, FeatureRecord]],
    to_forward: list[tuple[_Valid, FeatureRecord]],
    invalid: list[tuple[StreamRecord, InvalidRecordError]],
) -> None:
    """Count what each record became, leaving out the failed ones (they come back)."""
    failed = outcome.failed

    def ok(record: StreamRecord) -> bool:
        return record.sequence_number not in failed

    outcome.applied = sum(1 for v, _ in committed if ok(v.record))
    outcome.features_written = sum(1 for v, _ in to_store if ok(v.record))
    outcome.forwarded = sum(1 for v, _ in to_forward if ok(v.record))
    outcome.replayed = sum(1 for v, _ in (*plan.recovered, *plan.replayed) if ok(v.record))
    outcome.repeats = sum(1 for repeat, _ in plan.repeats if ok(repeat.record))
    outcome.quarantined = Counter(e.reason for r, e in invalid if ok(r))


def _read_cards(
    valid: list[_Valid],
    ports: PreprocessPorts,
    failed: set[SequenceNumber],
    outcome: PreprocessOutcome,
) -> dict[CardId, CardRecord | None]:
    """Every card of the batch (None: no state yet); records of unreadable cards fail."""
    card_ids = list(dict.fromkeys(v.txn.card_id for v in valid))
    outcome.cards_read = len(card_ids)
    if not card_ids:
        return {}
    try:
        found, unread = ports.states.load(card_ids)
    except RetryableError:
        found, unread = {}, set(card_ids)
    failed.update(v.record.sequence_number for v in valid if v.txn.card_id in unread)
    return {c: found.get(c) for c in card_ids if c not in unread}


def _read_ledger(
    valid: list[_Valid],
    cards: Mapping[CardId, CardRecord | None],
    ports: PreprocessPorts,
    failed: set[SequenceNumber],
) -> dict[TransactionId, FeatureRecord]:
    """Stored feature records of the batch's transaction ids and of its cards' pending ids."""
    ids = [v.txn.transaction_id for v in valid if v.txn.card_id in cards]
    ids += [t for card in cards.values() if card is not None for t in card.pending]
    ids = list(dict.fromkeys(ids))
    if not ids:
        return {}
    try:
        stored, unread = ports.features.load(ids)
    except RetryableError:
        stored, unread = {}, set(ids)
    # without its ledger entry a record cannot be told new from applied: retry it
    failed.update(v.record.sequence_number for v in valid if v.txn.transaction_id in unread)
    return stored


# A card's state item carries its pending feature records (DynamoDB items are at most 400 KB:
# "The maximum item size in DynamoDB is 400 KB", Developer Guide, "Quotas"). One batch applies
# a card's records only while their estimated size fits this budget; the card's later records
# are reported failed and come back, in order, in the next batch (which clears the pending
# records FeaturesTable holds by then). A card-testing burst of thousands of transactions on
# one card is applied in slices instead of making a write that can never succeed.
PENDING_BUDGET_BYTES = 256 * 1024
PENDING_RECORD_BYTES = 800  # a feature record as an item map, short ids (measured ~700)


def pending_bytes(card_id: str, transaction_id: str) -> int:
    """An upper estimate of one pending feature record's size in the card's state item."""
    # the id appears as the map key and in the record; the card id once in the record
    return PENDING_RECORD_BYTES + 2 * len(transaction_id) + len(card_id.encode())


def _plan(
    valid: list[_Valid],
    cards: Mapping[CardId, CardRecord | None],
    stored: Mapping[TransactionId, FeatureRecord],
    failed: set[SequenceNumber],
    now: datetime,
    pending_horizon: timedelta | None = None,
) -> _Plan:
    """Decide per record, in stream order: apply, recover, replay, repeat or conflict."""
    oldest = now - pending_horizon if pending_horizon is not None else None
    planner = _Planner(cards, stored, failed, now, oldest)
    for item in valid:
        planner.judge(item)
    return planner.plan


@dataclass
class _Planner:
    """`_plan`'s state while it walks the batch: what it decided and what it must remember."""

    cards: Mapping[CardId, CardRecord | None]
    stored: Mapping[TransactionId, FeatureRecord]
    failed: set[SequenceNumber]
    now: datetime
    oldest: datetime | None
    plan: _Plan = field(default_factory=_Plan)
    first: dict[TransactionId, _Valid] = field(default_factory=dict)  # each id's first record here
    blocked: set[CardId] = field(default_factory=set)  # cards with a failed record: none after it
    budget: dict[CardId, int] = field(default_factory=dict)  # per card: its pending bytes

    def judge(self, item: _Valid) -> None:
        earlier = self.first.get(item.txn.transaction_id)
        if earlier is not None:
            self._against_earlier(item, earlier)
        elif item.record.sequence_number in self.failed or item.txn.card_id in self.blocked:
            self._defer(item)
        else:
            self._judge_new(item)

    def _against_earlier(self, item: _Valid, earlier: _Valid) -> None:
        """A later record of an id met before in this batch."""
        if earlier.record.sequence_number in self.failed:
            # the id's first record could not be judged: neither can this one, retry both
            self.failed.add(item.record.sequence_number)
            self.blocked.add(item.txn.card_id)
        elif earlier.digest == item.digest:
            self.plan.repeats.append((item, earlier))
        else:
            self.plan.conflicts.append((item.record, _conflict(item.txn.transaction_id)))

    def _defer(self, item: _Valid) -> None:
        """This record and its card's later ones come back in a later batch."""
        self.first[item.txn.transaction_id] = item
        self.failed.add(item.record.sequence_number)
        self.blocked.add(item.txn.card_id)

    def _judge_new(self, item: _Valid) -> None:
        """The first record of an id in this batch: against the ledger, then applied."""
        txn_id, card_id = item.txn.transaction_id, item.txn.card_id
        card = self.plan.states.get(card_id) or self.cards[card_id]
        known = self.stored.get(txn_id) or (card.pending.get(txn_id) if card else None)
        if known is not None and not _same_transaction(known, item):
            # not the version applied: the later records of this id are judged against that one
            self.plan.conflicts.append((item.record, _conflict(txn_id)))
            return
        if known is None:
            self._apply(item, card)
            return
        self.first[txn_id] = item
        if txn_id in self.stored:
            self.plan.replayed.append((item, known))
        else:
            self.plan.recovered.append((item, known))

    def _apply(self, item: _Valid, card: CardRecord | None) -> None:
        txn_id, card_id = item.txn.transaction_id, item.txn.card_id
        pending = _still_pending(card, self.stored, self.oldest)
        if card_id not in self.budget:
            self.budget[card_id] = sum(pending_bytes(card_id, t) for t in pending)
        self.budget[card_id] += pending_bytes(card_id, txn_id)
        if self.budget[card_id] > PENDING_BUDGET_BYTES:
            self._defer(item)  # the card's share of this batch is full
            return
        self.first[txn_id] = item
        state = card.state if card else None
        after = advance_state(state, item.txn)
        doc = feature_record(
            item.record,
            item.txn,
            build_features(item.txn, state),
            after.txn_count,
            self.now,
            card_age_seconds(item.txn, state),
        )
        self.plan.states[card_id] = CardRecord(after, pending | {txn_id: doc})
        self.plan.applied.append((item, doc))


def _still_pending(
    card: CardRecord | None, stored: Mapping[TransactionId, Any], oldest: datetime | None
) -> dict[TransactionId, FeatureRecord]:
    """The card's pending records FeaturesTable does not hold yet, but none older than `oldest`."""
    if card is None:
        return {}
    return {
        t: d
        for t, d in card.pending.items()
        if t not in stored
        and (oldest is None or datetime.fromisoformat(str(d["ingested_at"])) >= oldest)
    }


def _same_transaction(known: FeatureRecord, item: _Valid) -> bool:
    """Whether an applied feature record is of this very transaction (not another with its id)."""
    digest = known.get("transaction_digest")  # absent on records stored before digests existed
    return known.get("card_id") == item.txn.card_id and digest in (None, item.digest)


def _conflict(transaction_id: str) -> InvalidRecordError:
    return InvalidRecordError(
        CONFLICTING_DUPLICATE,
        f"transaction {transaction_id} was applied before with other content; the first wins",
    )


def _commit_states(
    plan: _Plan,
    ports: PreprocessPorts,
    now: datetime,
    failed: set[SequenceNumber],
    outcome: PreprocessOutcome,
) -> list[tuple[_Valid, FeatureRecord]]:
    """Write each card as of its applied records; the applied records whose card committed.

    `_plan` never applies a card's record after one of its failed records (reads fail
    a card's or a transaction's records before planning), so every card's applications
    are one prefix, committed whole or not at all.
    """
    per_card: dict[CardId, list[tuple[_Valid, FeatureRecord]]] = defaultdict(list)
    for pair in plan.applied:
        per_card[pair[0].txn.card_id].append(pair)
    if not per_card:
        return []
    try:
        unsaved = ports.states.save([plan.states[c] for c in per_card], now)
    except RetryableError:
        unsaved = set(per_card)
    for card_id in unsaved:
        failed.update(v.record.sequence_number for v, _ in per_card[card_id])
    outcome.states_written = len(per_card) - len(unsaved)
    return [pair for pair in plan.applied if pair[0].txn.card_id not in unsaved]


@dataclass(frozen=True)
class Preprocessor:
    """The preprocess stage wired (see streamscore.handlers.preprocess.build): one call per batch.

    `step_executor` runs a batch's independent writes; it must not be the pool the
    adapters fan their calls out on. `pending_horizon`: see `preprocess_batch`.
    """

    ports: PreprocessPorts
    pending_horizon: timedelta | None = None
    step_executor: Executor | None = None

    def process(self, records: Sequence[StreamRecord], now: datetime) -> PreprocessOutcome:
        return preprocess_batch(
            records,
            self.ports,
            now=now,
            step_executor=self.step_executor,
            pending_horizon=self.pending_horizon,
        )
