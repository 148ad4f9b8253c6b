"""Label one LabelsStream batch: decode, quarantine, keep each transaction's greatest label, join
its prediction, and write it with the quality counts it moves.

A transaction's label in force is the greatest `label_key` it was ever sent (labels/contract.py),
so the outcome does not depend on order, repetition or batch boundaries. A label is written
only when it is greater than the stored one, on the condition that the stored one is still the
one read (or that none is stored), in one DynamoDB transaction with its quality counts: +1 on
its own attributes, -1 on those of the label it replaces. So counts move exactly with each
change of the label in force. A write whose condition failed was raced (another writer, or this
write's own earlier attempt whose answer was lost): the label is read again, and its record is
done when the stored label is now at least this one, else it fails and Lambda retries it.

The label joins the transaction's prediction as stored when the label is written: its model
version, its event hour (the count item), its score's quality bin (core/quality.py) and its
decision. A label of a transaction never scored (no prediction) is kept and counted under the
version "-" and the hour it was labelled in (`u_<label>`). A prediction written after its label
is not joined to it; a label replacing one whose prediction has expired since keeps the join
the replaced label made.

When the prediction carries a challenger's shadow score (scoring/shadow.py), the label also
counts on the challenger's count item paired with the champion (`paired_label_attributes`):
both models' bins and the pair of decisions of the same labelled transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from streamscore.core.errors import InvalidRecordError, RetryableError
from streamscore.core.ids import SequenceNumber, TransactionId
from streamscore.core.monitoring import (
    NO_VERSION,
    QUALITY,
    CountKey,
    Fact,
    Tally,
    hour_of,
    source_of,
)
from streamscore.core.quality import (
    CHALLENGER_DECISION,
    CHALLENGER_SCORE,
    CHALLENGER_VERSION,
    GUARD,
    label_attributes,
    paired_label_attributes,
)
from streamscore.core.records import StreamRecord, decode_contract, quarantine_item
from streamscore.core.steps import settle, submit_or_run
from streamscore.core.times import utc_iso_ms
from streamscore.labels.contract import FRAUD, MAX_LABEL_BYTES, Label, label_key
from streamscore.labels.ports import LabelPorts

STAGE = "labels"
MAX_CLOCK_SKEW = timedelta(hours=1)  # a label's time may run ahead of the function's clock


@dataclass
class LabelOutcome:
    """What happened to every record: written, unchanged, superseded, quarantined or failed."""

    records_in: int = 0
    written: int = 0  # labels written by this invocation (new or replacing)
    replaced: int = 0  # of those, labels that replaced a stored one
    unmatched: int = 0  # of those, labels of transactions with no prediction
    unchanged: int = 0  # the stored label is already at least this one (a replay, a late label)
    superseded: int = 0  # a greater label of the same transaction came in the same batch
    labels: Counter[str] = field(default_factory=Counter)  # of the labels written
    quarantined: Counter[str] = field(default_factory=Counter)
    failed: set[SequenceNumber] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _Received:
    record: StreamRecord
    label: Label
    key: str


def decode_label(record: StreamRecord, now: datetime) -> _Received:
    """The record's Label and its key; InvalidRecordError with the reason when it is not one, or
    when its time is not one a label can have: past UTC's range (no key), or in the future (it
    would stay in force forever: no real label could be greater)."""
    label = decode_contract(record, Label, MAX_LABEL_BYTES)
    try:
        key = label_key(label)
        future = label.labelled_at > now + MAX_CLOCK_SKEW
    except (OverflowError, ValueError):
        raise _bad_time("is outside the range of UTC times") from None
    if future:
        raise _bad_time(f"is more than {MAX_CLOCK_SKEW} after the time the label was received")
    return _Received(record, label, key)


def _bad_time(problem: str) -> InvalidRecordError:
    message = f"labelled_at {problem}"
    return InvalidRecordError(
        "invalid_field",
        message,
        [{"field": "labelled_at", "type": "labelled_at_range", "message": message}],
    )


def label_batch(
    records: Sequence[StreamRecord],
    ports: LabelPorts,
    now: datetime,
    executor: Executor | None = None,
) -> LabelOutcome:
    """Label one batch; never raises for bad input. `executor` runs the two reads side by side."""
    outcome = LabelOutcome(records_in=len(records))
    newest, invalid = _decode(records, outcome, now)
    quarantining = (
        submit_or_run(
            executor, ports.quarantine.save, [quarantine_item(r, e, STAGE, now) for r, e in invalid]
        )
        if invalid
        else None
    )
    ids = list(newest)
    predictions = submit_or_run(executor, ports.predictions.load, ids)
    stored, unread = _read(lambda: ports.labels.load(ids), ids)
    joined, unjoined = _read(predictions.result, ids)
    facts: list[Fact] = []
    for txn, received in newest.items():
        if txn in unread or txn in unjoined:
            outcome.failed.add(received.record.sequence_number)
            continue
        previous = stored.get(txn)
        if previous is not None and previous["label_key"] >= received.key:
            outcome.unchanged += 1
            continue
        facts.append(label_fact(received, previous, joined.get(txn), now))
    _write(ports, facts, newest, outcome, now)
    if quarantining is not None:
        settle(quarantining, {r.record_id: r for r, _ in invalid}, outcome.failed)
    outcome.quarantined = Counter(
        e.reason for r, e in invalid if r.sequence_number not in outcome.failed
    )
    return outcome


def _decode(
    records: Sequence[StreamRecord], outcome: LabelOutcome, now: datetime
) -> tuple[dict[TransactionId, _Received], list[tuple[StreamRecord, InvalidRecordError]]]:
    """Each transaction's greatest label of the batch, and the records that are no label."""
    newest: dict[TransactionId, _Received] = {}
    invalid: list[tuple[StreamRecord, InvalidRecordError]] = []
    for record in records:
        try:
            received = decode_label(record, now)
        except InvalidRecordError as error:
            invalid.append((record, error))
            continue
        txn = received.label.transaction_id
        kept = newest.get(txn)
        if kept is None:
            newest[txn] = received
            continue
        outcome.superseded += 1
        if received.key > kept.key:
            newest[txn] = received
    return newest, invalid


def _read(
    read: Callable[[], tuple[dict[TransactionId, dict[str, Any]], set[TransactionId]]],
    ids: Sequence[TransactionId],
) -> tuple[dict[TransactionId, dict[str, Any]], set[TransactionId]]:
    """What `read` found of `ids`, and the ids it could not read (all of them when it raised)."""
    if not ids:
        return {}, set()
    try:
        found, unread = read()
    except RetryableError:
        return {}, set(ids)
    return found, set(unread)


def label_fact(
    received: _Received,
    previous: dict[str, Any] | None,
    prediction: dict[str, Any] | None,
    now: datetime,
) -> Fact:
    """The label item to write, the quality counts it adds, and those it takes back from the
    label it replaces (`previous`, as stored)."""
    label, record = received.label, received.record
    item: dict[str, Any] = {
        "transaction_id": label.transaction_id,
        "label": label.label,
        "labelled_at": utc_iso_ms(label.labelled_at),
        "source": label.source,
        "label_key": received.key,
        "record_id": record.record_id,
        "received_at": utc_iso_ms(now),
    }
    if prediction is None and previous is not None and "model_version" in previous:
        prediction = previous  # expired since (PredictionsTtlDays): the join the label made
    source = source_of(record.stream_name, record.shard_id)
    if prediction is not None:
        item |= _joined(prediction)
        version, hour = item["model_version"], hour_of(item["event_time"])
        counted = label_attributes(
            label.label == FRAUD, item["decision"], float(item["score"]), GUARD in item
        )
    else:
        version, hour = NO_VERSION, hour_of(item["labelled_at"])
        counted = (f"u_{label.label}",)
    # where its counts went, so that the label replacing it can take them back
    item |= {"count_version": version, "count_hour": hour, "counted": list(counted)}
    fact = Fact(
        item=item,
        key=label.transaction_id,
        count_key=CountKey(QUALITY, version, hour, source),
        counts=Tally(quality=counted),
    )
    also: list[tuple[CountKey, Tally]] = []
    if CHALLENGER_VERSION in item:
        decided = "decline" if GUARD in item else item["decision"]  # the model's decision
        paired = paired_label_attributes(
            label.label == FRAUD,
            (decided, float(item["score"])),
            (item[CHALLENGER_DECISION], float(item[CHALLENGER_SCORE])),
        )
        item["paired_counted"] = list(paired)
        pair = CountKey(QUALITY, item[CHALLENGER_VERSION], hour, source, paired_with=version)
        also.append((pair, Tally(quality=paired)))
    if previous is not None:
        item["replaces"] = previous["label_key"]
        # when the replaced label became known: a training set cut before this label knows it
        item["replaces_received_at"] = previous["received_at"]
        also.extend(_taken_back(previous, source))
    fact.also = tuple(also)
    return fact


_JOINED = ("model_version", "event_time", "score", "decision")
_JOINED_CHALLENGER = (CHALLENGER_VERSION, CHALLENGER_SCORE, CHALLENGER_DECISION)


def _joined(prediction: dict[str, Any]) -> dict[str, Any]:
    """What a label keeps of its prediction: the champion's, and a challenger's when it scored."""
    joined = {name: prediction[name] for name in _JOINED}
    joined["model_version"] = str(joined["model_version"])
    joined["decision"] = str(joined["decision"])
    if all(prediction.get(name) is not None for name in _JOINED_CHALLENGER):
        joined |= {name: prediction[name] for name in _JOINED_CHALLENGER}
    if prediction.get(GUARD):  # a decline reviewed instead: its label measures the declines
        joined[GUARD] = str(prediction[GUARD])
    return joined


def _taken_back(previous: dict[str, Any], source: str) -> list[tuple[CountKey, Tally]]:
    """The counts of the label `previous` (as stored), each -1."""
    version, hour = previous["count_version"], previous["count_hour"]
    counted = Tally(quality=tuple(previous["counted"]), weight=-1)
    back = [(CountKey(QUALITY, version, hour, source), counted)]
    if "paired_counted" in previous:
        pair = CountKey(QUALITY, previous[CHALLENGER_VERSION], hour, source, paired_with=version)
        back.append((pair, Tally(quality=tuple(previous["paired_counted"]), weight=-1)))
    return back


def _write(
    ports: LabelPorts,
    facts: list[Fact],
    newest: dict[TransactionId, _Received],
    outcome: LabelOutcome,
    now: datetime,
) -> None:
    """Write the labels; a raced write is read again (see the module docstring)."""
    if not facts:
        return
    try:
        written, raced, failed = ports.labels.write(facts, now)
    except RetryableError:
        written, raced, failed = set(), set(), {TransactionId(f.key) for f in facts}
    if raced:
        again = sorted(raced)
        stored, unread = _read(lambda: ports.labels.load(again), again)
        for txn in raced:
            current = stored.get(txn)
            if txn in unread or current is None or current["label_key"] < newest[txn].key:
                failed.add(txn)
    for fact in facts:
        txn = TransactionId(fact.key)
        if txn in failed:
            outcome.failed.add(newest[txn].record.sequence_number)
        elif txn in written:
            outcome.written += 1
            outcome.replaced += "replaces" in fact.item
            outcome.unmatched += fact.item["count_version"] == NO_VERSION
            outcome.labels[fact.item["label"]] += 1
        else:  # raced, and the stored label is at least this one
            outcome.unchanged += 1
